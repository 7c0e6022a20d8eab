// The problems a config text is rejected with, one per line, for tests of
// validation messages (file:line:column). Fails the test when it loads.

import assert from 'node:assert/strict'
import { parseConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/errors.ts'

export function problems(text: string): string[] {
  try {
    parseConfig(text, 'c.yaml')
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    return err.message.split('\n')
  }
  assert.fail('expected the config to be rejected')
}
