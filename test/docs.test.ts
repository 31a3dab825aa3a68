/**
 * The README cannot drift from the code: every setting every service reads and every error code it
 * can answer with is documented, and the README documents no code that does not exist.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { commonSettings, envName, type SettingSpec } from '@codelab/service-kit';
import { authSettings } from '@codelab/auth/config';
import { gatewaySettings } from '@codelab/gateway/config';
import { llmProxySettings } from '@codelab/llm-proxy/config';
import { runtimeSettings } from '@codelab/runtime/config';
import { platformErrorCodes } from './helpers/error-codes.ts';
import { REPO_ROOT } from './helpers/processes.ts';

const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const common = Object.keys(commonSettings({ port: 0 }));

describe('README configuration table', () => {
  const services: [string, Record<string, SettingSpec<unknown>>][] = [
    ['GATEWAY', gatewaySettings],
    ['AGENT_RUNTIME', runtimeSettings],
    ['LLM_PROXY', llmProxySettings],
    ['AUTH_SERVICE', authSettings],
  ];
  it.each(services)('documents every %s setting', (prefix, spec) => {
    const missing = Object.entries(spec)
      .map(([key, s]) => {
        const name = envName(prefix, key, s);
        const documented = common.includes(key) && name.startsWith(`${prefix}__`) ? name.replace(`${prefix}__`, '<P>__') : name;
        return readme.includes(`\`${documented}\``) || readme.includes(`${documented}\``) ? undefined : name;
      })
      .filter(Boolean);
    expect(missing).toEqual([]);
  });
});

describe('README error table', () => {
  const codes = platformErrorCodes();
  const table = readme.slice(readme.indexOf('## Errors'));

  it('documents every error code of every service', () => {
    expect(codes.filter((code) => !table.includes(`\`${code}\``))).toEqual([]);
  });

  it('documents no code that does not exist', () => {
    const documented = [...table.matchAll(/`((?:[A-Z]+_)?ERR_[A-Z_]+)`/g)].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThan(20);
    expect(documented.filter((code) => !codes.includes(code))).toEqual([]);
  });
});
