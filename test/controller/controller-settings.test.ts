// The controller's settings from the environment: UPDATE_STATUS_ON_SHUTDOWN, HSTS, leader election, GATEWAY_API, GATEWAY_CONTROLLER_NAME.

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

describe('leader election settings', () => {
  it("defaults to client-go's timings (lease 15 s, renew deadline 10 s, retry 2 s) and the Lease nanoproxy-leader", () => {
    assert.deepEqual(readControllerSettings({}).leaderElection, { enabled: true, leaseName: 'nanoproxy-leader', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 })
  })

  it('takes seconds, with or without an s, and LEADER_ELECTION=false', () => {
    const s = readControllerSettings({ LEADER_ELECTION: 'false', LEADER_ELECTION_LEASE: 'edge-leader', LEADER_ELECTION_LEASE_DURATION: '30s', LEADER_ELECTION_RENEW_DEADLINE: '20', LEADER_ELECTION_RETRY_PERIOD: '0.5' })
    assert.deepEqual(s.leaderElection, { enabled: false, leaseName: 'edge-leader', leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 500 })
  })

  it('refuses timings that could let two replicas lead at once, with the rule they break', () => {
    assert.throws(() => readControllerSettings({ LEADER_ELECTION_RENEW_DEADLINE: '15' }), {
      message: 'LEADER_ELECTION_LEASE_DURATION=15, LEADER_ELECTION_RENEW_DEADLINE=15, LEADER_ELECTION_RETRY_PERIOD=2 are not valid: the lease duration must be longer than the renew deadline',
    })
    assert.throws(() => readControllerSettings({ LEADER_ELECTION_RETRY_PERIOD: '9' }), /the renew deadline must be longer than 1.2 × the retry period/)
    assert.throws(() => readControllerSettings({ LEADER_ELECTION_LEASE_DURATION: '15.5' }), /whole number of seconds/)
    assert.throws(() => readControllerSettings({ LEADER_ELECTION_RETRY_PERIOD: 'soon' }), /LEADER_ELECTION_RETRY_PERIOD="soon" is not valid: expected a number of seconds greater than 0/)
    assert.throws(() => readControllerSettings({ LEADER_ELECTION_LEASE: 'Not_A_Name' }), /LEADER_ELECTION_LEASE="Not_A_Name" is not valid/)
    assert.throws(() => readControllerSettings({ LEADER_ELECTION: 'yes' }), /LEADER_ELECTION="yes" is not valid: expected true or false/)
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
