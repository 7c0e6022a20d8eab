// The controller's settings from the environment: UPDATE_STATUS_ON_SHUTDOWN, HSTS.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { readControllerSettings } from '../../src/controller/controller-settings.ts'

describe('UPDATE_STATUS_ON_SHUTDOWN', () => {
  it('is on unless set to false', () => {
    assert.equal(readControllerSettings({}).updateStatusOnShutdown, true)
    assert.equal(readControllerSettings({ UPDATE_STATUS_ON_SHUTDOWN: 'true' }).updateStatusOnShutdown, true)
    assert.equal(readControllerSettings({ UPDATE_STATUS_ON_SHUTDOWN: 'False' }).updateStatusOnShutdown, false)
  })

  it('stops the controller at start-up with a clear message for any other value', () => {
    assert.throws(() => readControllerSettings({ UPDATE_STATUS_ON_SHUTDOWN: 'no', PORT: '99999' }), {
      message: 'PORT="99999" is not valid: expected a port number 0-65535\nUPDATE_STATUS_ON_SHUTDOWN="no" is not valid: expected true or false',
    })
  })
})

describe('HSTS settings', () => {
  it('are off unless HSTS=true, and then default to ingress-nginx\'s one year with includeSubDomains and no preload', () => {
    assert.equal(readControllerSettings({}).hsts, undefined)
    assert.equal(readControllerSettings({ HSTS: 'false', HSTS_MAX_AGE: '600' }).hsts, undefined)
    assert.deepEqual(readControllerSettings({ HSTS: 'true' }).hsts, { maxAge: 31536000, includeSubDomains: true, preload: false })
    assert.deepEqual(readControllerSettings({ HSTS: 'True', HSTS_MAX_AGE: '0', HSTS_INCLUDE_SUBDOMAINS: 'false', HSTS_PRELOAD: 'true' }).hsts, {
      maxAge: 0,
      includeSubDomains: false,
      preload: true,
    })
  })

  it('stop the controller at start-up with a clear message for a value that is not one', () => {
    assert.throws(() => readControllerSettings({ HSTS: 'yes', HSTS_MAX_AGE: '1y', HSTS_PRELOAD: '1' }), {
      message: [
        'HSTS="yes" is not valid: expected true or false',
        'HSTS_PRELOAD="1" is not valid: expected true or false',
        'HSTS_MAX_AGE="1y" is not valid: expected whole seconds (0 or more)',
      ].join('\n'),
    })
  })
})
