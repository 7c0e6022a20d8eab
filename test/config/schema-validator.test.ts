// src/config/schema-validator.ts is generated (scripts/generate-schema-validator.ts):
// it must be what the generator makes from the current schema and Ajv.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { Ajv } from 'ajv'
import { configSchema } from '../../src/config/schema.ts'
import { validateConfigSchema } from '../../src/config/schema-validator.ts'
import { validatorSource, VALIDATOR_FILE } from '../../scripts/generate-schema-validator.ts'

describe('the generated schema validator', () => {
  it('is up to date with schema.ts (else run npm run generate:validator)', () => {
    assert.equal(readFileSync(VALIDATOR_FILE, 'utf8'), validatorSource())
  })

  it('answers as Ajv compiling the schema at run time does, errors included', () => {
    const compiled = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(configSchema)
    const samples: unknown[] = [
      null,
      { upstreams: [{ name: 'a', host: 'a.internal', port: 80 }], rules: [{ upstream: 'a', path: '/x', host: '*.example.com' }] },
      { upstreams: [{ name: '', host: 'http://x', port: 0, scheme: 'ftp', extra: 1 }], rules: [{ path: 'x y', stripPath: 'yes' }] },
      { upstreams: 'nope', rules: [null], other: true },
      { upstreams: [{ name: '\u{1F600}', host: '::1' }] },
      [],
    ]
    for (const sample of samples) {
      assert.equal(validateConfigSchema(sample), compiled(sample), JSON.stringify(sample))
      assert.deepEqual(validateConfigSchema.errors, compiled.errors, JSON.stringify(sample))
    }
  })
})
