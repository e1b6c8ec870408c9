import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx', 'src/**/*.test.ts', 'src/**/*.test.tsx'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share the one dockerd, kernel and ports: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
