import oclif from 'eslint-config-oclif'
import prettier from 'eslint-config-prettier'

export default [
  {ignores: ['dist/', 'node_modules/', '.backends/', '.test-run/', 'coverage/']},
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
    },
  },
]
