import neostandard, { plugins, resolveIgnoresFromGitignore } from 'neostandard'
import tseslint from 'typescript-eslint'

// The house style is JavaScript Standard Style (neostandard: no semicolons, two spaces, a space
// before a function's parentheses) with TypeScript's recommended rules, lines of at most 140
// characters, and one type-aware rule: a promise nobody awaits or handles is an error.
export default [
  { ignores: [...resolveIgnoresFromGitignore(), 'dist/', 'coverage/', '.tap/', 'data/', '.scratch/'] },
  ...neostandard({ ts: true }),
  ...tseslint.configs.recommended,
  {
    plugins: { '@stylistic': plugins['@stylistic'] },
    rules: {
      '@stylistic/max-len': ['error', { code: 140 }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error'] }],
      'no-void': ['error', { allowAsStatement: true }],
      // routes files and their tests write ${ENV} references as plain strings, on purpose
      'no-template-curly-in-string': 'off'
    }
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // tap's t.test() runs its subtest whether or not the caller awaits it
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafePromises: [{ from: 'package', package: '@tapjs/core', name: 'PromiseWithSubtest' }]
      }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }]
    }
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', setImmediate: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  {
    files: ['test/**', 'scripts/**', 'bench/**', 'examples/**', 'src/cli/**'],
    rules: { 'no-console': 'off' }
  }
]
