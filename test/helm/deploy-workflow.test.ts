/**
 * .github/workflows/deploy.yml, the deployment guide's pipeline: a valid workflow file (the
 * workflow schema, @action-validator/core) that builds and pushes the four images, then upgrades
 * the release with the production values at that commit, with a chart lint before.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validateWorkflow } from '@action-validator/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from './helm-tools.ts';

const FILE = path.join(ROOT, '.github', 'workflows', 'deploy.yml');

describe('the deploy workflow', () => {
  const text = readFileSync(FILE, 'utf8');

  it('is a valid workflow file, as is every other workflow of the repository', () => {
    for (const f of ['deploy.yml', 'load-tests.yml']) {
      const state = validateWorkflow(readFileSync(path.join(ROOT, '.github', 'workflows', f), 'utf8'));
      expect(state.errors, f).toEqual([]);
    }
    // the validator does refuse a broken one
    expect(validateWorkflow('on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: 3\n').errors.length).toBeGreaterThan(0);
  });

  it('builds and pushes the four images at the commit, then runs helm upgrade --install with the production values at that tag', () => {
    type Step = { uses?: string; run?: string; with?: Record<string, unknown> };
    const wf = parse(text) as {
      on: Record<string, unknown>;
      jobs: Record<string, { needs?: string; strategy?: { matrix: { service: string[] } }; steps: Step[] }>;
    };
    expect(Object.keys(wf.on)).toContain('push');
    const images = wf.jobs.images!;
    expect(images.strategy!.matrix.service.sort()).toEqual(['auth', 'gateway', 'llm-proxy', 'runtime']);
    const build = images.steps.find((s) => s.uses?.startsWith('docker/build-push-action'))!;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: GitHub Actions expressions, as the workflow spells them
    expect(build.with).toMatchObject({ target: '${{ matrix.service }}', push: true });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: as above
    expect(String(build.with!.tags)).toContain('${{ matrix.service }}:${{ github.sha }}');
    const deploy = wf.jobs.deploy!;
    expect(deploy.needs).toBe('images');
    const runs = deploy.steps.map((s) => s.run ?? '').join('\n');
    expect(runs).toContain('helm lint --strict deploy/helm/codelab -f deploy/helm/codelab/values-prod.yaml');
    const upgrade = runs.slice(runs.indexOf('helm upgrade --install codelab deploy/helm/codelab'));
    expect(upgrade).toContain('-f deploy/helm/codelab/values-prod.yaml');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: as above
    expect(upgrade).toContain('--set image.tag="${{ github.sha }}"');
  });
});
