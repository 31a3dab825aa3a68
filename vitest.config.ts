import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['alerts/test/**/*.test.ts', 'loadtests/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts', 'dashboards/test/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: a few files at a time keeps the embedded database and spawned services responsive.
    maxWorkers: 3,
    env: { NO_COLOR: '1' },
  },
});
