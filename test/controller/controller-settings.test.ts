// The controller's settings from the environment: UPDATE_STATUS_ON_SHUTDOWN.

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
