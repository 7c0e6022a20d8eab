// The one-node test cluster's DNS (test/helpers/node-cluster.ts starts it as
// its own process, stopped by PID): the kubelet's clusterDNS points pods
// here. It answers A queries for Service names, SERVICE.NAMESPACE.svc.DOMAIN
// (the upstream hosts NanoProxy's controller writes), with the Service's
// ClusterIP, from a watch of all Services; every other name is NXDOMAIN, so
// the resolver's search-list attempts fail fast. A Kubernetes cluster runs
// CoreDNS for this ("DNS for Services and Pods", kubernetes.io); the tests
// need only this one record type, and building CoreDNS from source would add
// minutes to a cold run. UDP only: the answers are far below 512 bytes.
//
//   node cluster-dns-server.ts <listen address> <kubeconfig> [cluster domain]

import { createSocket } from 'node:dgram'
import { CoreV1Api, KubeConfig, makeInformer, type V1Service } from '@kubernetes/client-node'

const [listen = '127.0.0.1', kubeconfig = '', domain = 'cluster.local'] = process.argv.slice(2)
const suffix = `.svc.${domain}`
const ips = new Map<string, string>() // "name.namespace" → ClusterIP
const namespaces = new Map<string, number>() // namespace → Services in it

function key(s: V1Service): string {
  return `${s.metadata?.name}.${s.metadata?.namespace}`
}
function add(s: V1Service): void {
  if (!ips.has(key(s))) namespaces.set(s.metadata!.namespace!, (namespaces.get(s.metadata!.namespace!) ?? 0) + 1)
  const ip = s.spec?.clusterIP
  ips.set(key(s), ip && ip !== 'None' ? ip : '')
}
function remove(s: V1Service): void {
  if (ips.delete(key(s))) namespaces.set(s.metadata!.namespace!, (namespaces.get(s.metadata!.namespace!) ?? 1) - 1)
}

const kc = new KubeConfig()
kc.loadFromFile(kubeconfig)
const core = kc.makeApiClient(CoreV1Api)
const informer = makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces())
informer.on('add', add)
informer.on('update', add)
informer.on('delete', remove)
// The informer stops on any error but 410: restart it (see field notes).
informer.on('error', () => setTimeout(() => void informer.start().catch(() => {}), 500))
await informer.start()

const A = 1
const NXDOMAIN = 3

/** The question's name (lowercased) and where the question ends, or undefined. */
function question(msg: Buffer): { name: string; type: number; end: number } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined
  const labels: string[] = []
  let p = 12
  while (p < msg.length) {
    const n = msg[p]!
    if (n === 0) break
    if (n > 63 || p + 1 + n > msg.length) return undefined
    labels.push(msg.toString('latin1', p + 1, p + 1 + n))
    p += 1 + n
  }
  if (p + 5 > msg.length) return undefined
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(p + 1), end: p + 5 }
}

function answer(msg: Buffer): Buffer | undefined {
  const q = question(msg)
  if (!q) return undefined
  let rcode = NXDOMAIN
  let ip = ''
  if (q.name.endsWith(suffix)) {
    const rest = q.name.slice(0, -suffix.length).split('.')
    if (rest.length === 2 && ips.has(`${rest[0]}.${rest[1]}`)) {
      rcode = 0
      ip = ips.get(`${rest[0]}.${rest[1]}`)!
    } else if (rest.length === 1 && namespaces.get(rest[0]!)) rcode = 0
  }
  const withAnswer = rcode === 0 && q.type === A && ip !== ''
  const head = Buffer.alloc(12)
  msg.copy(head, 0, 0, 2) // id
  // QR, opcode copied, AA, RD copied; RA off; RCODE (RFC 1035 §4.1.1).
  head.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x7900) | rcode, 2)
  head.writeUInt16BE(1, 4)
  head.writeUInt16BE(withAnswer ? 1 : 0, 6)
  const parts = [head, msg.subarray(12, q.end)]
  if (withAnswer) {
    const rr = Buffer.alloc(16)
    rr.writeUInt16BE(0xc00c, 0) // name: pointer to the question's
    rr.writeUInt16BE(A, 2)
    rr.writeUInt16BE(1, 4) // IN
    rr.writeUInt32BE(5, 6) // TTL 5 s
    rr.writeUInt16BE(4, 10)
    ip.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i))
    parts.push(rr)
  }
  return Buffer.concat(parts)
}

const socket = createSocket('udp4')
socket.on('message', (msg, rinfo) => {
  const reply = answer(msg)
  if (reply) socket.send(reply, rinfo.port, rinfo.address)
})
socket.bind(53, listen, () => process.stdout.write(`dns listening on ${listen}:53\n`))
process.on('SIGTERM', () => process.exit(0))
