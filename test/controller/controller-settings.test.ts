// The controller's settings from the environment: UPDATE_STATUS_ON_SHUTDOWN, GATEWAY_API, GATEWAY_CONTROLLER_NAME.

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

describe('GATEWAY_API and GATEWAY_CONTROLLER_NAME', () => {
  it('leave the Gateway API off unless GATEWAY_API is true, with nanoproxy.io/gateway-controller as the GatewayClass controller name', () => {
    assert.equal(readControllerSettings({}).gatewayApi, false)
    assert.equal(readControllerSettings({ GATEWAY_API: 'TRUE' }).gatewayApi, true)
    assert.equal(readControllerSettings({}).gatewayControllerName, 'nanoproxy.io/gateway-controller')
    assert.equal(readControllerSettings({ GATEWAY_CONTROLLER_NAME: 'example.com/gateway' }).gatewayControllerName, 'example.com/gateway')
  })

  it('stop the controller at start-up with a clear message for a value that is not true/false, or a controller name that is not a domain-prefixed path', () => {
    assert.throws(() => readControllerSettings({ GATEWAY_API: 'yes', GATEWAY_CONTROLLER_NAME: 'no-domain' }), {
      message:
        'GATEWAY_API="yes" is not valid: expected true or false\nGATEWAY_CONTROLLER_NAME="no-domain" is not valid: expected a domain-prefixed path such as nanoproxy.io/gateway-controller',
    })
  })
})
