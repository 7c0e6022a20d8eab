// A network namespace for upstream servers with real (non-loopback)
// addresses: the API server refuses loopback addresses in EndpointSlices.
// One namespace, one veth pair, the subnet 198.18.20.0/24 (the part of the
// benchmarking range 198.18.0.0/15, RFC 2544, given to these tests: other
// tests use other parts of it, the cluster harness 198.19.240.0/23). The
// host end is 198.18.20.1; servers listen on addresses added inside.
// Needs root; removed by remove(), and at process exit whatever happened.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

const NODE = process.execPath
const SERVER = new URL('./netns-server.ts', import.meta.url).pathname
export const SUBNET = '198.18.20'

/** Why these tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns add, veth pairs)'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'needs iproute2 (the ip command)'
  }
  return undefined
}

export interface NetnsServer {
  name: string
  address: string
  port: number
  child: ChildProcess
  /** SIGKILL: the server vanishes, its connections reset. */
  kill(): Promise<void>
}

export class Netns {
  readonly name = `np-test-${process.pid}`
  private readonly hostVeth = `npt${process.pid % 100000}h`
  private readonly nsVeth = `npt${process.pid % 100000}n`
  /** The /24 used (three octets): SUBNET unless another is given (the cluster bench uses its own, so it can run next to the tests). */
  readonly subnet: string
  private readonly servers = new Set<NetnsServer>()
  private readonly added = new Set<string>()
  private readonly cleanup = (): void => this.removeSync()

  constructor(subnet = SUBNET) {
    this.subnet = subnet
  }

  /** Creates the namespace and the veth pair. */
  create(): void {
    this.removeSync()
    const ip = (...args: string[]): void => {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    }
    process.on('exit', this.cleanup)
    ip('netns', 'add', this.name)
    ip('link', 'add', this.hostVeth, 'type', 'veth', 'peer', 'name', this.nsVeth)
    ip('link', 'set', this.nsVeth, 'netns', this.name)
    ip('addr', 'add', `${this.subnet}.1/24`, 'dev', this.hostVeth)
    ip('link', 'set', this.hostVeth, 'up')
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', this.nsVeth, 'up')
  }

  /** Starts a server named `name` on `address:port` inside the namespace (the address is added first). */
  async start(name: string, address: string, port: number, delayMs = 0): Promise<NetnsServer> {
    if (!this.added.has(address)) {
      execFileSync('ip', ['netns', 'exec', this.name, 'ip', 'addr', 'add', `${address}/24`, 'dev', this.nsVeth], { stdio: 'ignore' })
      this.added.add(address)
    }
    const child = spawn('ip', ['netns', 'exec', this.name, NODE, SERVER, name, address, String(port), String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c
        if (out.includes('"listening":true')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`server ${name} exited with ${code} before listening`)))
    })
    const server: NetnsServer = {
      name,
      address,
      port,
      child,
      kill: async () => {
        this.servers.delete(server)
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = once(child, 'exit')
        child.kill('SIGKILL')
        await exited
      },
    }
    this.servers.add(server)
    return server
  }

  async remove(): Promise<void> {
    for (const s of [...this.servers]) await s.kill()
    this.removeSync()
    process.off('exit', this.cleanup)
  }

  private removeSync(): void {
    for (const s of this.servers) s.child.kill('SIGKILL')
    // Deleting the namespace deletes its veth end, and with it the pair.
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' })
    } catch {
      // not there
    }
    try {
      execFileSync('ip', ['link', 'del', this.hostVeth], { stdio: 'ignore' })
    } catch {
      // went with the namespace
    }
  }
}
