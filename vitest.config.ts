import {defineConfig} from 'vitest/config'

// Three tiers by suffix: *.test.ts (unit, no network), *.integration.test.ts (real servers), *.e2e.test.ts (bin/run.js).
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          // ink renders frames only outside CI (is-in-ci); the component tests need them, also in CI
          env: {CI: 'false'},
          include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
          exclude: ['test/**/*.integration.test.ts', 'test/**/*.e2e.test.ts'],
        },
      },
      {extends: true, test: {name: 'integration', include: ['test/**/*.integration.test.ts']}},
      {extends: true, test: {name: 'e2e', include: ['test/**/*.e2e.test.ts']}},
    ],
  },
})
