// Lint rules: the recommended sets, type-aware, so that floating promises and
// misused async callbacks (the usual source of unhandled rejections in a
// server) are caught before they reach production.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  // dist/: `npm run build` output; schema-validator.ts: generated (scripts/generate-schema-validator.ts).
  { ignores: ['node_modules/', '.cache/', 'dist/', 'bench/results/', 'test/k8s/', 'src/config/schema-validator.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // node:test's describe/it return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
)
