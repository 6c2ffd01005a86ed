import { defineConfig } from 'vitest/config';

// Tests talk to real servers on loopback; generous timeouts, and files run in separate
// processes so a relay under test can be killed without taking the runner with it.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
