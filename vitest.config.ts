import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx', 'src/**/*.test.ts', 'src/**/*.test.tsx'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share the one dockerd, kernel and ports: run files one at a time.
    fileParallelism: false,
    // Sweeps what killed test runs left behind (rules, state, containers): test/support/owned.ts.
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default'],
  },
});
