// The `nanoproxy` command line: one subcommand per job.

import { parseArgs, type ParseArgsConfig } from 'node:util'
import { NanoProxyError } from '../errors.ts'
import { VERSION } from '../version.ts'

const USAGE = `nanoproxy ${VERSION}: HTTP reverse proxy and Kubernetes ingress controller

Usage:
  nanoproxy proxy [-c FILE]     run the reverse proxy (config: -c, else CONF_FILE, else ./config.yaml)
  nanoproxy controller [-c FILE] run the Kubernetes ingress controller (writes the proxy config FILE)
  nanoproxy validate FILE       check a config file; print every problem as file:line:column
  nanoproxy routes FILE         print the compiled routing table in match order
  nanoproxy render FILE...      translate Ingress/IngressClass/Service YAML to a proxy config

Options:
  -c, --config FILE   config file (the Go-style -config FILE also works)
  -h, --help          show help
  -v, --version       show the version

Environment (proxy): PORT (8080), TIMEOUT seconds (5), IDLE_TIMEOUT seconds (60),
  SHUTDOWN_TIMEOUT seconds (25), DEBUG, CERT_PATH, HTTPS_PORT (8443 with
  certificates), HTTPS_REDIRECT_PORT (443), TLS_SKIP_VERIFY, CONFIG_B64,
  CONF_FILE, TRUSTED_PROXIES (comma-separated CIDRs), ACCESS_LOG (off to disable),
  ACCESS_LOG_FORMAT (json or combined), REQUEST_ID (on), LOG_LEVEL (info),
  ADMIN_PORT (off; /metrics and the dashboard).
See docs/configuration.md.
`

const COMMAND_HELP: Record<string, string> = {
  proxy: `Usage: nanoproxy proxy [-c FILE]

Runs the reverse proxy. The config file is watched and reloaded when it
changes; a file that fails validation is rejected whole and the last good
config keeps serving. SIGTERM/SIGINT drain in-flight requests, then exit.
`,
  controller: `Usage: nanoproxy controller [-c FILE]

Watches Ingress, IngressClass, Service and TLS Secret objects and writes the
proxy's config file (-c, else CONF_FILE, else ./config.yaml) and the
certificate files next to it whenever they change.
Connects with KUBECONFIG, ~/.kube/config or the in-cluster service account.
Environment: CONTROLLER_NAME (benc-uk/nanoproxy), WATCH_NAMESPACE (all),
CLUSTER_DOMAIN (cluster.local), PORT for /healthz and /readyz (9090),
PUBLISH_SERVICE (namespace/name) or PUBLISH_ADDRESS (IPs/hostnames) for
Ingress status, DEFAULT_TLS_SECRET (namespace/name), HSTS (false),
HSTS_MAX_AGE (31536000), HSTS_INCLUDE_SUBDOMAINS (true), HSTS_PRELOAD (false),
LEADER_ELECTION (true), LEADER_ELECTION_LEASE (nanoproxy-leader),
LEADER_ELECTION_LEASE_DURATION (15), LEADER_ELECTION_RENEW_DEADLINE (10),
LEADER_ELECTION_RETRY_PERIOD (2), GATEWAY_API (false),
GATEWAY_CONTROLLER_NAME (nanoproxy.io/gateway-controller), DEBUG.
`,
  validate: `Usage: nanoproxy validate FILE

Checks FILE as the proxy would load it. Exits 0 if it is valid; otherwise
prints every problem as FILE:LINE:COLUMN: message and exits 1.
`,
  render: `Usage: nanoproxy render FILE...

Translates Kubernetes objects (Ingress, IngressClass, Service; several YAML
documents per file) into the proxy config the controller would write, and
prints it. Problems the controller would report as Warning events are
printed on stderr. CONTROLLER_NAME and CLUSTER_DOMAIN apply as in the
controller.
`,
  routes: `Usage: nanoproxy routes FILE

Prints the routing table compiled from FILE: for each host, the rules that
can answer it in the order they are tried (the first match wins).
`,
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} satisfies ParseArgsConfig['options']

export async function main(argv: string[]): Promise<number> {
  // The original NanoProxy took Go-style flags: `-config FILE`.
  const args = argv.map((a) => (a === '-config' ? '--config' : a.startsWith('-config=') ? `-${a}` : a))
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    process.stderr.write(`nanoproxy: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  // `nanoproxy -c FILE` with no subcommand runs the proxy, as the original binary did.
  const command = positionals[0] ?? (values.config !== undefined ? 'proxy' : undefined)
  const rest = positionals.slice(1)

  if (values.version) {
    process.stdout.write(`nanoproxy ${VERSION}\n`)
    return 0
  }
  if (values.help || command === 'help') {
    const topic = command === 'help' ? rest[0] : command
    process.stdout.write((topic && COMMAND_HELP[topic]) || USAGE)
    return 0
  }

  // Each command is loaded only when run: the proxy process never loads the
  // Kubernetes client (tens of MiB of memory and start-up time it does not need).
  switch (command) {
    case 'proxy': {
      const { runProxy } = await import('./proxy-command.ts')
      if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0])}`, 'proxy')
      await runProxy({ config: values.config }, process.env)
      releaseStartupMemory()
      return -1 // keeps running; exits on a signal
    }
    case 'controller': {
      const { runController } = await import('./controller-command.ts')
      if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0])}`, 'controller')
      await runController({ config: values.config }, process.env)
      return -1 // keeps running; exits on a signal
    }
    case 'validate':
    case 'routes': {
      const file = rest[0] ?? values.config
      if (file === undefined || rest.length > 1) return usageError('expects exactly one FILE', command)
      if (command === 'validate') return (await import('./validate-command.ts')).runValidate(file)
      return (await import('./routes-command.ts')).runRoutes(file)
    }
    case 'render':
      if (rest.length === 0) return usageError('expects at least one FILE', 'render')
      return (await import('./render-command.ts')).runRender(rest, process.env)
    case undefined:
      process.stderr.write(USAGE)
      return 2
    default:
      return usageError(`unknown command ${JSON.stringify(command)}`)
  }
}

/**
 * Start-up (loading modules, reading the config) leaves garbage behind and a
 * young generation grown to full size, and an idle proxy allocates too little
 * for V8 to ever shrink them: 2-7 MB of RSS held for nothing (measured in
 * docs/performance.md). One memory-reducing collection (V8's "last resort"
 * flavour: compacts, returns free pages, shrinks the young generation) gives
 * them back, once, in about 20-40 ms; the young generation grows again under
 * load, so throughput is not traded for it. `gc` exists when Node runs with
 * --expose-gc, as bin/nanoproxy starts it; otherwise nothing happens.
 */
function releaseStartupMemory(): void {
  globalThis.gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}

function usageError(message: string, command?: string): number {
  process.stderr.write(`nanoproxy${command ? ` ${command}` : ''}: ${message}\n\n${(command && COMMAND_HELP[command]) || USAGE}`)
  return 2
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    // Start-up failures: one clear message for a human, no stack trace
    // unless the error is a bug (not one of ours).
    const e = err as NodeJS.ErrnoException
    const expected = err instanceof NanoProxyError || typeof e?.code === 'string' // ours, or EADDRINUSE, EACCES...
    const message = expected ? e.message : (e?.stack ?? String(err))
    process.stderr.write(`nanoproxy: ${message}\n`)
    process.exit(1)
  },
)
