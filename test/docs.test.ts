/**
 * The README cannot drift from the code: every setting every service reads and every error code it
 * can answer with is documented, and the README documents no code that does not exist.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { commonSettings, envName, type SettingSpec, kitErrors } from '@codelab/service-kit';
import { authSettings } from '@codelab/auth/config';
import { OAUTH_ERROR_TABLE } from '@codelab/auth/errors';
import { gatewaySettings } from '@codelab/gateway/config';
import { gatewayErrors } from '@codelab/gateway/errors';
import { llmProxySettings } from '@codelab/llm-proxy/config';
import { LLMP_ERRORS } from '@codelab/llm-proxy/errors';
import { runtimeSettings } from '@codelab/runtime/config';
import { runtimeErrors } from '@codelab/runtime/errors';
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
  const codes = [
    ...Object.keys(kitErrors),
    ...Object.keys(gatewayErrors),
    ...Object.keys(runtimeErrors),
    ...Object.keys(LLMP_ERRORS),
    ...Object.keys(OAUTH_ERROR_TABLE),
    // the codes nginx answers with itself in the Compose stack
    ...[...readFileSync(path.join(REPO_ROOT, 'deploy/nginx/nginx.conf'), 'utf8').matchAll(/"code":"([A-Z_]+)"/g)].map((m) => m[1]!),
  ];
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
