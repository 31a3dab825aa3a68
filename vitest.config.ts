import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that compare timings (what Prometheus reads against what a load client measured): run alone, after the rest. */
const TIMING = ['test/telemetry/**/*.test.ts'];
/** The fault suite has a config of its own (vitest.faults.config.ts, `npm run test:faults`). */
const FAULTS = ['test/deploy/faults.test.ts'];
/** A second container platform (the chart's development render under Docker): after the rest, not beside the Compose stack's tests. */
const CONTAINERS_AFTER = ['test/helm/dev-render.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // expect.poll waits for a condition; its 1 s default made a condition on a busy machine (a
    // sign-in answered after a password hash while the suite ran beside the Docker stack) a timing test.
    expect: { poll: { timeout: 20_000 } },
    // Two cores: a few files at a time keeps the embedded database and spawned services responsive.
    maxWorkers: 3,
    env: { NO_COLOR: '1' },
    projects: [
      {
        extends: true,
        test: {
          name: 'suites',
          include: [
            'alerts/test/**/*.test.ts',
            'loadtests/test/**/*.test.ts',
            'packages/*/test/**/*.test.ts',
            'services/*/test/**/*.test.ts',
            'test/**/*.test.ts',
            'dashboards/test/**/*.test.ts',
          ],
          exclude: [...configDefaults.exclude, ...TIMING, ...FAULTS, ...CONTAINERS_AFTER],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'timing', include: TIMING, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'containers', include: CONTAINERS_AFTER, sequence: { groupOrder: 2 } } },
    ],
  },
});
