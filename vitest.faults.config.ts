import { defineConfig } from 'vitest/config';

/**
 * The fault suite (test/deploy/faults.test.ts): the scaled-out Compose stack with Prometheus and
 * Alertmanager, one fault after the other. `npm run test:faults`, on a machine with nothing else
 * running: a second stack at the same time would make the faults' timings the machine's. Needs the
 * harness Docker daemon (test/deploy/README.md); without it the suite skips, naming what to install.
 */
export default defineConfig({
  test: {
    include: ['test/deploy/faults.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    env: { NO_COLOR: '1' },
  },
});
