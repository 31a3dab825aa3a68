/**
 * The boundaries between the workspaces are enforced by `npm run lint` (Biome's noRestrictedImports,
 * configured in biome.jsonc): another package is imported by its name and through an entry point its
 * package.json exports, never by a path into its src; a service's code and the packages import no
 * service; a service's main.ts and config.ts take the kit from its boot entry (they load before
 * tracing starts). These tests lint files with forbidden and allowed imports and check what Biome
 * says, and that every workspace pins its dependencies to the versions the others and the lockfile use.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIOME = path.join(ROOT, 'node_modules', '.bin', 'biome');

interface Manifest {
  name: string;
  exports?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const readJson = <T>(file: string): T => JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as T;
const WORKSPACES = ['packages', 'services'].flatMap((dir) => readdirSync(path.join(ROOT, dir)).map((name) => `${dir}/${name}`));
const manifests = new Map(WORKSPACES.map((ws) => [ws, readJson<Manifest>(`${ws}/package.json`)]));

interface Diagnostic {
  category: string;
  message: string;
  location: { path: string };
}

/** Biome's noRestrictedImports diagnostics for `cwd` (one lint run), by file. */
function restrictedImports(cwd: string, args: string[]): Map<string, string[]> {
  const run = spawnSync(BIOME, ['lint', '--reporter=json', '--max-diagnostics=none', '--only=style/noRestrictedImports', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const json = run.stdout.split('\n').find((line) => line.startsWith('{'));
  if (!json) throw new Error(`biome printed no report (exit ${run.status}): ${run.stdout}${run.stderr}`);
  const out = new Map<string, string[]>();
  for (const d of (JSON.parse(json) as { diagnostics: Diagnostic[] }).diagnostics) {
    expect(d.category).toBe('lint/style/noRestrictedImports');
    out.set(d.location.path, [...(out.get(d.location.path) ?? []), d.message]);
  }
  return out;
}

describe('workspace boundaries (biome.jsonc)', () => {
  // Each case is a file at a place of the repository's layout with one import; Biome lints them all
  // at once with the repository's biome.jsonc, in a directory of their own.
  const cases: { file: string; source: string; forbidden: RegExp | false }[] = [];
  const forbid = (file: string, source: string, message: RegExp) => cases.push({ file, source, forbidden: message });
  const allow = (file: string, source: string) => cases.push({ file, source, forbidden: false });

  // deep imports of the kit, by name or by path, from everywhere
  for (const dir of ['services/gateway/src/routes', 'services/auth/test', 'scripts/bench', 'test/e2e']) {
    forbid(`${dir}/kit-module.ts`, `import { openDatabase } from '@codelab/service-kit/db';`, /import from '@codelab\/service-kit'/);
    forbid(`${dir}/kit-src.ts`, `import { openDatabase } from '@codelab/service-kit/src/db.ts';`, /import from '@codelab\/service-kit'/);
    forbid(
      `${dir}/protocol-module.ts`,
      `import { FRAME_SEQ_HEADER } from '@codelab/protocol/ws-frames';`,
      /import from '@codelab\/protocol'/,
    );
  }
  forbid('scripts/bench/kit-path.ts', `import { openDatabase } from '../../packages/service-kit/src/db.ts';`, /never by a relative path/);
  forbid('test/service-path.ts', `import { createUser } from '../services/auth/src/users.ts';`, /never by a relative path/);
  forbid('alerts/test/x.test.ts', `import { createAuthMetrics } from '../../services/auth/src/metrics.ts';`, /never by a relative path/);
  forbid(
    'services/gateway/src/ws/x.ts',
    `import type { StreamChunk } from '../../../../packages/protocol/src/ws-frames.ts';`,
    /never by a relative path/,
  );
  forbid(
    'services/runtime/test/sibling-path.test.ts',
    `import { buildApp } from '../../llm-proxy/src/app.ts';`,
    /never by a relative path/,
  );
  // every form of import is checked: dynamic, re-export, type-only
  forbid('scripts/dynamic.ts', `const kit = await import('../packages/service-kit/src/index.ts');`, /never by a relative path/);
  forbid(
    'packages/service-kit/src/re-export.ts',
    `export { createUser } from '../../../services/auth/src/users.ts';`,
    /never by a relative path/,
  );
  forbid('test/type-only.ts', `import type { Database } from '@codelab/service-kit/db';`, /import from '@codelab\/service-kit'/);
  // a service's private modules, by name
  forbid(
    'test/service-src.ts',
    `import { JwksCache } from '@codelab/gateway/src/auth/jwks-cache.ts';`,
    /entry point its package\.json exports/,
  );
  forbid(
    'test/service-module.ts',
    `import { authenticate } from '@codelab/gateway/authenticate';`,
    /entry point its package\.json exports/,
  );
  // a service's code and the packages import no service
  forbid('services/runtime/src/service.ts', `import { buildApp } from '@codelab/llm-proxy/app';`, /import no service/);
  forbid('packages/service-kit/src/service.ts', `import { authSettings } from '@codelab/auth/config';`, /import no service/);
  forbid('packages/protocol/test/service.test.ts', `import { gatewayErrors } from '@codelab/gateway/errors';`, /import no service/);
  // what loads before tracing starts takes the kit from its boot entry
  forbid('services/gateway/src/config.ts', `import { setting } from '@codelab/service-kit';`, /load before tracing starts/);
  forbid('services/auth/src/main.ts', `import { boot } from '@codelab/service-kit';`, /load before tracing starts/);

  allow('services/runtime/src/config.ts', `import { setting } from '@codelab/service-kit/boot';`);
  allow('services/runtime/src/main.ts', `import { boot } from '@codelab/service-kit/boot';`);
  allow(
    'services/gateway/src/routes/kit.ts',
    `import { createService } from '@codelab/service-kit';\nimport { FRAME_SEQ_HEADER } from '@codelab/protocol';`,
  );
  allow('services/gateway/src/routes/testing.ts', `import { silentLogger } from '@codelab/service-kit/testing';`);
  allow(
    'services/gateway/src/auth/relative.ts',
    `import { bearerToken } from './authenticate.ts';\nimport { gatewayErrors } from '../errors.ts';`,
  );
  allow('services/gateway/test/auth/own-src.test.ts', `import { JwksCache } from '../../src/auth/jwks-cache.ts';`);
  allow('services/runtime/test/service-entry.test.ts', `import { buildApp } from '@codelab/llm-proxy/app';`);
  allow('packages/service-kit/test/own-src.test.ts', `import { openDatabase } from '../src/db.ts';`);
  allow('test/service-entry.ts', `import { buildApp } from '@codelab/auth/app';\nimport { stack } from './helpers/stack.ts';`);
  allow(
    'scripts/bench/kit.ts',
    `import { startEmbeddedPostgres } from '@codelab/service-kit';\nimport { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';`,
  );
  allow('loadtests/test/root-folder.test.ts', `import { sloRules } from '../../alerts/src/rules.ts';`);
  // every entry point a service's package.json exports may be imported (outside the services' code),
  // and nothing else
  for (const [ws, manifest] of manifests) {
    if (!ws.startsWith('services/')) continue;
    for (const entry of Object.keys(manifest.exports ?? {}))
      allow(`test/entries/${ws}${entry.slice(1)}.ts`, `import * as m from '${manifest.name}${entry.slice(1)}';`);
    forbid(
      `test/entries/${ws}/not-exported.ts`,
      `import * as m from '${manifest.name}/not-exported';`,
      /entry point its package\.json exports/,
    );
  }

  let dir: string;
  let reported: Map<string, string[]>;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'codelab-boundaries-'));
    copyFileSync(path.join(ROOT, 'biome.jsonc'), path.join(dir, 'biome.jsonc'));
    expect(new Set(cases.map((c) => c.file)).size, 'one case per file').toBe(cases.length);
    for (const c of cases) {
      mkdirSync(path.dirname(path.join(dir, c.file)), { recursive: true });
      writeFileSync(path.join(dir, c.file), `${c.source}\n`);
    }
    // not a git repository: the ignore files do not apply
    reported = restrictedImports(dir, ['--vcs-enabled=false', '.']);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports every forbidden import, saying what to import instead', () => {
    const missed = cases.filter((c) => c.forbidden && !(reported.get(c.file) ?? []).some((m) => (c.forbidden as RegExp).test(m)));
    expect(missed.map((c) => `${c.file}: ${c.source} → ${JSON.stringify(reported.get(c.file) ?? [])}`)).toEqual([]);
  });

  it('reports no allowed import', () => {
    const flagged = cases.filter((c) => !c.forbidden && reported.has(c.file));
    expect(flagged.map((c) => `${c.file}: ${c.source} → ${JSON.stringify(reported.get(c.file))}`)).toEqual([]);
  });

  it('applies to the repository itself: a deep import is reported where it is', () => {
    // a file of the working tree for a moment (Biome lints standard input but reports nothing then)
    const file = path.join('test', 'lint', `boundary-probe-${process.pid}.ts`);
    const lint = (source: string): string[] => {
      writeFileSync(path.join(ROOT, file), `${source}\n`);
      try {
        return [...restrictedImports(ROOT, [file]).values()].flat();
      } finally {
        rmSync(path.join(ROOT, file), { force: true });
      }
    };
    expect(lint("import { openDatabase } from '../../packages/service-kit/src/db.ts';").join('\n')).toMatch(/never by a relative path/);
    expect(lint("import { openDatabase } from '@codelab/service-kit';")).toEqual([]);
  });

  it('lets a package export only its entry points', () => {
    const exported = Object.fromEntries([...manifests].map(([ws, m]) => [ws, Object.keys(m.exports ?? {})]));
    expect(exported).toMatchObject({
      'packages/service-kit': ['.', './boot', './testing'],
      'packages/protocol': ['.'],
    });
    const wildcards = Object.entries(exported).flatMap(([ws, entries]) => entries.filter((e) => e.includes('*')).map((e) => `${ws}: ${e}`));
    expect(wildcards).toEqual([]);
  });
});

describe('dependencies', () => {
  type Lock = { packages: Record<string, { version?: string; link?: boolean; resolved?: string }> };
  const lock = readJson<Lock>('package-lock.json');
  const all: [string, Manifest][] = [
    ['package.json', readJson<Manifest>('package.json')],
    ...[...manifests].map(([ws, m]): [string, Manifest] => [`${ws}/package.json`, m]),
  ];

  it('are pinned to one exact version everywhere, the version the lockfile installs', () => {
    const problems: string[] = [];
    const seen = new Map<string, string>();
    for (const [file, m] of all) {
      for (const [name, version] of Object.entries({ ...m.dependencies, ...m.devDependencies, ...m.optionalDependencies })) {
        if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(version)) problems.push(`${file}: ${name} ${version} is not an exact version`);
        if (seen.has(name) && seen.get(name) !== version) problems.push(`${file}: ${name} ${version}, elsewhere ${seen.get(name)}`);
        seen.set(name, version);
        const installed = lock.packages[`node_modules/${name}`];
        // a workspace (@codelab/…) is a link to its folder
        const lockVersion = installed?.link ? lock.packages[installed.resolved ?? '']?.version : installed?.version;
        if (lockVersion !== version) problems.push(`${file}: ${name} ${version}, the lockfile installs ${lockVersion}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
