// What `nanoproxy validate` says about certificates (src/proxy/certificate-inspection.ts),
// with real openssl-made files, at a chosen moment.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { inspectCertificates } from '../../src/proxy/certificate-inspection.ts'
import { createPki } from '../helpers/certs.ts'

describe('certificate inspection', () => {
  const pki = createPki()
  const leaf = pki.issue(['a.example.com', '*.apps.example.com'])
  const entry = (hosts: string[]) => ({ hosts, certFile: 'cert.pem', keyFile: 'key.pem', default: false })
  const day = 24 * 60 * 60 * 1000

  it('finds nothing wrong with a current certificate that names its hosts, wildcards included', () => {
    assert.deepEqual(inspectCertificates([entry(['a.example.com', '*.apps.example.com'])], leaf.dir), [])
  })

  it('warns of a certificate that has expired, and of one not valid yet', () => {
    const later = inspectCertificates([entry(['a.example.com'])], leaf.dir, Date.now() + 30 * day)
    assert.deepEqual(later.map((f) => [f.severity, f.message.replace(/ on .*/, '')]), [['warning', 'expired']])
    const earlier = inspectCertificates([entry(['a.example.com'])], leaf.dir, Date.now() - 30 * day)
    assert.deepEqual(earlier.map((f) => [f.severity, f.message.replace(/ before .*/, '')]), [['warning', 'not valid']])
  })

  it('is an error when a file cannot be read', () => {
    const [finding] = inspectCertificates([{ ...entry(['a.example.com']), certFile: 'missing.pem' }], leaf.dir)
    assert.equal(finding?.severity, 'error')
    assert.match(finding?.message ?? '', /ENOENT.*missing\.pem/)
  })
})
