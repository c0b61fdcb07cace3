import oclif from 'eslint-config-oclif'
import prettier from 'eslint-config-prettier'

export default [
  {ignores: ['dist/', 'node_modules/', '.backends/', '.test-run/', 'coverage/', '.node-cache/']},
  ...oclif,
  prettier,
  {
    rules: {
      'n/no-process-exit': 'off',
      'unicorn/no-process-exit': 'off',
      'no-await-in-loop': 'off',
      'unicorn/prefer-event-target': 'off',
      'perfectionist/sort-classes': 'off',
      'perfectionist/sort-objects': 'off',
      'perfectionist/sort-object-types': 'off',
      'perfectionist/sort-interfaces': 'off',
      'perfectionist/sort-union-types': 'off',
      'perfectionist/sort-modules': 'off',
      'unicorn/no-array-reduce': 'off',
      'max-params': 'off',
      complexity: 'off',
      // import order is left to the author; vitest, not mocha, runs the tests
      'perfectionist/sort-imports': 'off',
      'perfectionist/sort-named-imports': 'off',
      'perfectionist/sort-named-exports': 'off',
      'perfectionist/sort-exports': 'off',
      'perfectionist/sort-switch-case': 'off',
      '@stylistic/lines-between-class-members': 'off',
      'prefer-destructuring': 'off',
      'unicorn/no-useless-undefined': 'off',
      'mocha/no-top-level-hooks': 'off',
      'mocha/max-top-level-suites': 'off',
      'mocha/consistent-spacing-between-blocks': 'off',
      'mocha/no-setup-in-describe': 'off',
      'mocha/no-mocha-arrows': 'off',
    },
  },
  {
    // one concept per file, and functions a reader can hold in their head (issue 13)
    files: ['src/**/*.ts', 'src/**/*.tsx'],
    rules: {
      'max-lines': ['error', {max: 500, skipBlankLines: true, skipComments: true}],
      complexity: ['error', {max: 20}],
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {sourceType: 'commonjs', globals: {require: 'readonly', process: 'readonly'}},
    rules: {'@typescript-eslint/no-require-imports': 'off'},
  },
  {
    // one PascalCase file per ink component (CONVENTIONS.md, point 6)
    files: ['src/lib/ui/components/*.tsx'],
    rules: {'unicorn/filename-case': ['error', {case: 'pascalCase'}]},
  },
]
