// Parse and validate a config file, all or nothing.
//
// Every problem is reported with the line and column it stands at, and one
// bad field rejects the whole file: a half-applied config is worse than the
// previous good one (the same stance as `nginx -t` before a reload).

import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import type { ErrorObject } from 'ajv'
import jsyaml from 'js-yaml'
import type * as Yaml from 'yaml'
import type { Document, Node } from 'yaml'
import { ConfigError, type ConfigProblem } from '../errors.ts'
import { cidrProblem } from '../router/cidr-list.ts'
import { compilePathRegex, groupCount, highestGroup, PathRegexError } from '../router/path-regex.ts'
import {
  configSchema,
  PATTERN_HINTS,
  type Balance,
  type HeaderEdits,
  type MatchMode,
  type ProxyConfig,
  type RedirectPolicy,
  type RewritePolicy,
  type RuleConfig,
  type Scheme,
  type TimeoutsPolicy,
  type UpstreamConfig,
} from './schema.ts'
// configSchema compiled ahead of time (scripts/generate-schema-validator.ts):
// compiling it here at start-up cost ~3 MB of RSS and Ajv in the image.
import { validateConfigSchema as validateSchema } from './schema-validator.ts'

/**
 * `yaml`, the parser that knows where each node stands, is needed only to
 * report the problems of an invalid file: it is loaded then, on first use.
 * Loaded at start-up it holds ~7 MB of RSS in a proxy that never needs it.
 */
let yamlModule: typeof Yaml | undefined
function yaml(): typeof Yaml {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml)
}

interface RawServer {
  host: string
  port?: number
  weight?: number
}
interface RawUpstream {
  name: string
  host?: string
  port?: number
  servers?: RawServer[]
  balance?: Balance
  serverName?: string
  scheme?: Scheme
  noHostRewrite?: boolean
}
interface RawRule {
  upstream?: string
  path?: string
  host?: string
  matchMode?: MatchMode
  stripPath?: boolean
  rawPath?: boolean
  sslRedirect?: boolean
  ignoreCase?: boolean
  forceSslRedirect?: boolean
  redirect?: Partial<RedirectPolicy>
  rewrite?: RewritePolicy
  requestHeaders?: HeaderEdits
  responseHeaders?: HeaderEdits
  maxBodySize?: number
  timeouts?: TimeoutsPolicy
  allow?: string[]
  deny?: string[]
}
interface RawCertificate {
  hosts?: string[]
  certFile?: string
  keyFile?: string
  default?: boolean
  hstsMaxAge?: number
  hstsIncludeSubDomains?: boolean
  hstsPreload?: boolean
}
interface RawConfig {
  upstreams?: RawUpstream[] | null
  rules?: RawRule[] | null
  certificates?: RawCertificate[] | null
}

/** Reads and validates `file`; throws ConfigError naming every problem. */
export async function loadConfigFile(file: string): Promise<{ config: ProxyConfig; text: string }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [{ line: 0, column: 0, message: `cannot read file: ${(err as Error).message}` }])
  }
  return { config: parseConfig(text, file), text }
}

/**
 * Parses YAML text into a validated config with defaults applied.
 *
 * Two parsers, one answer. `js-yaml` is about ten times faster than `yaml`
 * on large files (10,000 rules: ~40 ms against ~500 ms, which would stall
 * the event loop on every reload), but only `yaml` keeps the position of
 * every node. So a file is first read with js-yaml (YAML 1.2 core schema,
 * as `yaml` uses) and, if it is valid, that is the result; only a file
 * with problems is read again with `yaml` to say where each problem is.
 */
export function parseConfig(text: string, file = '<config>'): ProxyConfig {
  return parseValid(text) ?? parseWithPositions(text, file)
}

/** The fast path: the config if `text` is entirely valid, else undefined. */
function parseValid(text: string): ProxyConfig | undefined {
  let raw = parseGeneratedJson(text)
  if (raw === undefined) {
    try {
      raw = jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA }) ?? null
    } catch {
      return undefined
    }
  }
  acceptYaml11Booleans(raw)
  if (!validateSchema(raw)) return undefined
  const { upstreams, rules, certificates } = sections(raw)
  if (crossFieldProblems(upstreams, rules, certificates).length > 0) return undefined
  return normalise(upstreams, rules, certificates)
}

/** The first line of the file the ingress controller writes (src/controller/config-writer.ts). */
export const GENERATED_MARK = '# Written by the NanoProxy ingress controller'

/**
 * The file the controller writes: its header (`#` comment lines), then one
 * JSON object. Parsed with JSON.parse, ~40 times faster than a YAML parser
 * on the same text (10,000 Ingresses: ~20 ms against ~600 ms). JSON is
 * YAML, so this is only a shortcut, taken for the controller's files only:
 * JSON.parse silently keeps the last of two equal keys, which the YAML path
 * rejects, and a hand-written JSON file must be judged as YAML is. Anything
 * JSON.parse refuses takes the YAML path, and a file with problems is
 * reported by the careful path with line and column. Returns undefined when
 * the shortcut does not apply.
 */
function parseGeneratedJson(text: string): unknown {
  if (!text.startsWith(GENERATED_MARK)) return undefined
  let i = 0
  while (text[i] === '#') {
    const eol = text.indexOf('\n', i)
    if (eol === -1) return undefined
    i = eol + 1
  }
  if (text[i] !== '{') return undefined
  try {
    return JSON.parse(text.slice(i)) as unknown
  } catch {
    return undefined
  }
}

/**
 * The careful path: every problem, positioned; or the config if there is
 * none. Exported so tests can check both paths read valid files alike.
 */
export function parseWithPositions(text: string, file: string): ProxyConfig {
  const { LineCounter, parseAllDocuments } = yaml()
  const lineCounter = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const at = (offset: number): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset)
    return { line: pos.line, column: pos.col }
  }

  if (!Array.isArray(docs)) {
    // EmptyStream: an empty file is a valid, empty config (every request gets 404).
    return { upstreams: [], rules: [] }
  }
  const problems: ConfigProblem[] = []
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) {
      problems.push({ ...at(e.pos[0]), message: e.message.split('\n')[0] ?? e.message })
    }
  }
  if (docs.length > 1) {
    const second = docs[1]
    problems.push({ ...at(second?.range[0] ?? 0), message: 'the config file must hold a single YAML document' })
  }
  if (problems.length > 0) throw new ConfigError(file, problems)

  const doc = docs[0]
  if (!doc) return { upstreams: [], rules: [] }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown
  acceptYaml11Booleans(raw)

  if (!validateSchema(raw)) {
    for (const err of validateSchema.errors ?? []) {
      problems.push(schemaProblem(doc, raw, err, at))
    }
  }
  const { upstreams, rules, certificates } = sections(raw)
  for (const p of crossFieldProblems(upstreams, rules, certificates)) problems.push({ ...nodePos(doc, p.path, at), message: p.message })
  if (problems.length > 0) throw new ConfigError(file, dedupe(problems))
  return normalise(upstreams, rules, certificates)
}

function sections(raw: unknown): { upstreams: RawUpstream[]; rules: RawRule[]; certificates: RawCertificate[] | undefined } {
  const config = raw as RawConfig | null
  const certificates = config?.certificates
  return {
    upstreams: listOf<RawUpstream>(config?.upstreams),
    rules: listOf<RawRule>(config?.rules),
    certificates: certificates === undefined || certificates === null ? undefined : listOf<RawCertificate>(certificates),
  }
}

/** The schema's pattern lets anything with a colon through as IPv6; check it properly. */
function badIpv6(host: unknown): boolean {
  return typeof host === 'string' && host.includes(':') && isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 6
}

/**
 * Checks that span fields: names are unique, every rule's upstream exists,
 * IPv6 hosts are real, an upstream has either `host` or `servers`, a host
 * has one certificate, there is one default.
 */
function crossFieldProblems(upstreams: RawUpstream[], rules: RawRule[], certificates: RawCertificate[] = []): { path: PathKey[]; message: string }[] {
  const problems: { path: PathKey[]; message: string }[] = []
  const seen = new Set<string>()
  const hostHint = 'must be a hostname or IP address, without scheme, port or path'
  upstreams.forEach((u, i) => {
    if (badIpv6(u.host)) {
      problems.push({ path: ['upstreams', i, 'host'], message: `upstream ${i + 1} field "host": ${JSON.stringify(u.host)} ${hostHint}` })
    }
    const hasServers = u.servers !== undefined
    if (u.host === undefined && !hasServers) {
      problems.push({ path: ['upstreams', i], message: `upstream ${i + 1} needs "host" (one server) or "servers" (a list, possibly empty)` })
    } else if (u.host !== undefined && hasServers) {
      problems.push({ path: ['upstreams', i, 'servers'], message: `upstream ${i + 1} has both "host" and "servers": give one server with host/port, or a list in servers` })
    } else if (hasServers && u.port !== undefined) {
      problems.push({ path: ['upstreams', i, 'port'], message: `upstream ${i + 1} field "port" goes with "host"; with "servers", give each server its port` })
    }
    if (Array.isArray(u.servers)) {
      u.servers.forEach((s, j) => {
        if (s !== null && typeof s === 'object' && badIpv6(s.host)) {
          problems.push({ path: ['upstreams', i, 'servers', j, 'host'], message: `upstream ${i + 1} server ${j + 1} field "host": ${JSON.stringify(s.host)} ${hostHint}` })
        }
      })
    }
    if (typeof u.name !== 'string') return
    if (seen.has(u.name)) problems.push({ path: ['upstreams', i, 'name'], message: `duplicate upstream name "${u.name}"` })
    seen.add(u.name)
  })
  rules.forEach((r, i) => {
    if (typeof r.host === 'string' && r.host.includes(':') && isIP(r.host.replace(/^\[(.*)\]$/, '$1')) !== 6) {
      problems.push({ path: ['rules', i, 'host'], message: `rule ${i + 1} field "host": ${JSON.stringify(r.host)} must be a hostname or IP address, without scheme, port or path` })
    }
    for (const p of policyProblems(r, i)) problems.push(p)
    if (typeof r.upstream === 'string' && r.upstream !== '' && !seen.has(r.upstream)) {
      const known = [...seen].map((n) => `"${n}"`).join(', ') || 'none are defined'
      problems.push({
        path: ['rules', i, 'upstream'],
        message: `rule ${i + 1} names upstream "${r.upstream}", which is not defined (upstreams: ${known})`,
      })
    }
  })
  // One certificate per name: which of two a client would get must not
  // depend on the order of the file (the controller resolves conflicts
  // before writing, and says so in an Event).
  const owner = new Map<string, number>()
  let defaultAt: number | undefined
  certificates.forEach((c, i) => {
    // Files come in pairs; an entry without them stands for hosts served
    // with the default certificate, so it cannot be the default itself.
    const files = (c.certFile === undefined ? 0 : 1) + (c.keyFile === undefined ? 0 : 1)
    if (files === 1) {
      const missing = c.certFile === undefined ? 'certFile' : 'keyFile'
      problems.push({ path: ['certificates', i], message: `certificate ${i + 1}: "${missing}" is missing (give both certFile and keyFile, or neither for hosts served with the default certificate)` })
    } else if (files === 0) {
      if (c.default === true) problems.push({ path: ['certificates', i, 'default'], message: `certificate ${i + 1}: a default certificate needs certFile and keyFile` })
      else if (!Array.isArray(c.hosts) || c.hosts.length === 0) {
        problems.push({ path: ['certificates', i], message: `certificate ${i + 1}: no certFile, keyFile or hosts (an entry without files lists hosts served with the default certificate)` })
      }
    }
    if (c.default === true) {
      if (defaultAt !== undefined) problems.push({ path: ['certificates', i, 'default'], message: `certificate ${i + 1} is a second default (certificate ${defaultAt + 1} is the default already)` })
      else defaultAt = i
    }
    if (!Array.isArray(c.hosts)) return
    c.hosts.forEach((h, j) => {
      if (typeof h !== 'string') return
      const host = normaliseRuleHost(h)
      const first = owner.get(host)
      if (first !== undefined && first !== i) problems.push({ path: ['certificates', i, 'hosts', j], message: `certificate ${i + 1}: host "${host}" already has certificate ${first + 1}` })
      else owner.set(host, i)
    })
  })
  return problems
}

/**
 * Header fields a policy may not touch: those that frame the message or
 * belong to one connection (RFC 9110 §7.6.1, RFC 9112 §6), which the proxy
 * writes itself, and Host, which `rewrite.hostname` sets.
 */
export const PROTECTED_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'content-length',
  'host',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** The checks of one rule's match mode and policies that span fields. */
function policyProblems(r: RawRule, i: number): { path: PathKey[]; message: string }[] {
  const problems: { path: PathKey[]; message: string }[] = []
  const at = (field: string, ...rest: PathKey[]): PathKey[] => ['rules', i, field, ...rest]
  const hasRedirect = r.redirect !== null && typeof r.redirect === 'object'
  if (r.upstream === undefined && !hasRedirect) {
    problems.push({ path: ['rules', i], message: `rule ${i + 1} is missing required field "upstream" (only a rule with "redirect" has none)` })
  }
  const regex = r.matchMode === 'regex'
  let groups = 0
  if (typeof r.path === 'string') {
    if (regex) {
      try {
        groups = groupCount(compilePathRegex(r.path, r.ignoreCase === true))
      } catch (err) {
        if (!(err instanceof PathRegexError)) throw err
        problems.push({ path: at('path'), message: `rule ${i + 1} field "path": ${JSON.stringify(r.path)} ${err.message}` })
      }
    } else if (/[?#]/.test(r.path)) {
      problems.push({ path: at('path'), message: `rule ${i + 1} field "path": ${JSON.stringify(r.path)} must not contain "?" or "#" (the query string is never matched; for a regular expression, set matchMode: regex)` })
    }
  } else if (regex) {
    problems.push({ path: at('matchMode'), message: `rule ${i + 1}: matchMode regex needs a "path" (the pattern)` })
  }
  if (r.ignoreCase === true && !regex) problems.push({ path: at('ignoreCase'), message: `rule ${i + 1} field "ignoreCase" applies only with matchMode: regex` })
  const pathAndPrefix = (policy: 'redirect' | 'rewrite', v: { path?: unknown; prefix?: unknown } | undefined): void => {
    if (v === null || typeof v !== 'object') return
    if (typeof v.path === 'string' && typeof v.prefix === 'string') {
      problems.push({ path: at(policy, 'prefix'), message: `rule ${i + 1} field "${policy}": give "path" (the whole path) or "prefix" (the matched part), not both` })
    }
    if (typeof v.prefix === 'string' && r.matchMode !== 'prefix' && r.matchMode !== 'pathPrefix' && r.matchMode !== undefined) {
      problems.push({ path: at(policy, 'prefix'), message: `rule ${i + 1} field "${policy}.prefix" needs matchMode prefix or pathPrefix (it replaces the matched prefix)` })
    }
    if (typeof v.path === 'string') {
      const wanted = highestGroup(v.path)
      if (wanted > 0 && !regex) {
        problems.push({ path: at(policy, 'path'), message: `rule ${i + 1} field "${policy}.path": $${wanted} refers to a capture group, which only a matchMode: regex rule has` })
      } else if (wanted > groups && regex) {
        problems.push({ path: at(policy, 'path'), message: `rule ${i + 1} field "${policy}.path": $${wanted} refers to a capture group the rule's path does not have (it has ${groups})` })
      }
    }
  }
  pathAndPrefix('redirect', r.redirect)
  pathAndPrefix('rewrite', r.rewrite)
  if (r.rewrite !== null && typeof r.rewrite === 'object' && typeof r.rewrite.prefix === 'string' && r.stripPath === true) {
    problems.push({ path: at('rewrite', 'prefix'), message: `rule ${i + 1}: "rewrite.prefix" and "stripPath" both replace the matched prefix; use one` })
  }
  for (const field of ['allow', 'deny'] as const) {
    const list = r[field] as unknown
    if (!Array.isArray(list)) continue
    list.forEach((cidr: unknown, j) => {
      const problem = typeof cidr === 'string' ? cidrProblem(cidr.trim()) : undefined
      if (problem !== undefined) problems.push({ path: at(field, j), message: `rule ${i + 1} field "${field}[${j + 1}]": ${problem}` })
    })
  }
  for (const field of ['requestHeaders', 'responseHeaders'] as const) {
    const edits = r[field]
    if (edits === null || typeof edits !== 'object') continue
    for (const op of ['set', 'add', 'remove'] as const) {
      const list = edits[op] as unknown
      if (!Array.isArray(list)) continue
      list.forEach((entry: unknown, j) => {
        const name = typeof entry === 'string' ? entry : (entry as { name?: unknown } | null)?.name
        if (typeof name === 'string' && PROTECTED_HEADERS.has(name.toLowerCase())) {
          problems.push({
            path: typeof entry === 'string' ? at(field, op, j) : at(field, op, j, 'name'),
            message: `rule ${i + 1} field "${field}": "${name}" cannot be changed by a policy (the proxy writes the framing and connection fields${name.toLowerCase() === 'host' ? '; use rewrite.hostname' : ''})`,
          })
        }
      })
    }
  }
  return problems
}

/** Applies the defaults of the original NanoProxy to a validated file. */
function normalise(upstreams: RawUpstream[], rules: RawRule[], certificates: RawCertificate[] | undefined): ProxyConfig {
  return {
    ...(certificates === undefined
      ? {}
      : {
          certificates: certificates.map((c) => ({
            hosts: (c.hosts ?? []).map(normaliseRuleHost),
            ...(c.certFile === undefined || c.keyFile === undefined ? {} : { certFile: c.certFile, keyFile: c.keyFile }),
            default: c.default === true,
            ...(c.hstsMaxAge === undefined ? {} : { hstsMaxAge: c.hstsMaxAge }),
            ...(c.hstsIncludeSubDomains === true ? { hstsIncludeSubDomains: true } : {}),
            ...(c.hstsPreload === true ? { hstsPreload: true } : {}),
          })),
        }),
    upstreams: upstreams.map((u): UpstreamConfig => {
      const scheme = u.scheme ?? 'http'
      const defaultPort = scheme === 'https' ? 443 : 80
      const unbracket = (h: string): string => h.replace(/^\[(.*)\]$/, '$1')
      const where =
        u.servers !== undefined
          ? { servers: u.servers.map((s) => ({ host: unbracket(s.host), port: s.port ?? defaultPort, weight: s.weight ?? 1 })) }
          : { host: unbracket(u.host ?? ''), port: u.port ?? defaultPort }
      return {
        name: u.name,
        ...where,
        ...(u.balance !== undefined ? { balance: u.balance } : {}),
        ...(u.serverName !== undefined ? { serverName: u.serverName.replace(/\.$/, '').toLowerCase() } : {}),
        scheme,
        noHostRewrite: u.noHostRewrite ?? false,
      }
    }),
    rules: rules.map((r): RuleConfig => ({
      ...(r.upstream !== undefined ? { upstream: r.upstream } : {}),
      path: r.path ?? '/',
      host: normaliseRuleHost(r.host ?? ''),
      matchMode: r.matchMode ?? 'prefix',
      stripPath: r.stripPath ?? false,
      ...(r.rawPath === true ? { rawPath: true } : {}),
      ...(r.sslRedirect === false ? { sslRedirect: false } : {}),
      ...(r.ignoreCase === true ? { ignoreCase: true } : {}),
      ...(r.forceSslRedirect === true ? { forceSslRedirect: true } : {}),
      ...(r.redirect !== undefined
        ? {
            redirect: {
              ...r.redirect,
              ...(r.redirect.hostname !== undefined ? { hostname: normaliseRuleHost(r.redirect.hostname) } : {}),
              statusCode: r.redirect.statusCode ?? 302,
            },
          }
        : {}),
      ...(r.rewrite !== undefined ? { rewrite: { ...r.rewrite } } : {}),
      ...(r.requestHeaders !== undefined ? { requestHeaders: normaliseEdits(r.requestHeaders) } : {}),
      ...(r.responseHeaders !== undefined ? { responseHeaders: normaliseEdits(r.responseHeaders) } : {}),
      ...(r.maxBodySize !== undefined ? { maxBodySize: r.maxBodySize } : {}),
      ...(r.timeouts !== undefined ? { timeouts: { ...r.timeouts } } : {}),
      ...(r.allow !== undefined ? { allow: r.allow.map((c) => c.trim()) } : {}),
      ...(r.deny !== undefined ? { deny: r.deny.map((c) => c.trim()) } : {}),
    })),
  }
}

/** Header edits with names to remove in lower case (set/add keep the spelling they are sent with). */
function normaliseEdits(e: HeaderEdits): HeaderEdits {
  return {
    ...(e.set !== undefined ? { set: e.set.map((h) => ({ name: h.name, value: h.value })) } : {}),
    ...(e.add !== undefined ? { add: e.add.map((h) => ({ name: h.name, value: h.value })) } : {}),
    ...(e.remove !== undefined ? { remove: e.remove.map((n) => n.toLowerCase()) } : {}),
  }
}

/**
 * Hosts compare case-insensitively (RFC 9110 §4.2.3); a trailing dot names
 * the same host; an IPv6 literal is kept without its brackets, as the
 * request host is (see router/request-host.ts).
 */
function normaliseRuleHost(host: string): string {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return h.endsWith('.') ? h.slice(0, -1) : h
}

/**
 * The original NanoProxy (Go, yaml.v3) read `yes`/`no`/`on`/`off` as
 * booleans in boolean fields, as YAML 1.1 did. YAML 1.2 reads them as
 * strings; convert them in the two boolean fields so old files still load.
 */
function acceptYaml11Booleans(raw: unknown): void {
  const words: Record<string, boolean> = { yes: true, on: true, y: true, no: false, off: false, n: false }
  const fix = (list: unknown, field: string): void => {
    if (!Array.isArray(list)) return
    for (const item of list) {
      if (item === null || typeof item !== 'object') continue
      const obj = item as Record<string, unknown>
      const v = obj[field]
      if (typeof v === 'string' && v.toLowerCase() in words) obj[field] = words[v.toLowerCase()]
    }
  }
  if (raw === null || typeof raw !== 'object') return
  fix((raw as Record<string, unknown>).upstreams, 'noHostRewrite')
  fix((raw as Record<string, unknown>).rules, 'stripPath')
  fix((raw as Record<string, unknown>).rules, 'sslRedirect')
  fix((raw as Record<string, unknown>).rules, 'ignoreCase')
  fix((raw as Record<string, unknown>).rules, 'forceSslRedirect')
}

type PathKey = string | number

/** The entries of a list that are mappings (the schema reports the rest). */
function listOf<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v.filter((x) => x !== null && typeof x === 'object') as T[]) : []
}

function nodePos(doc: Document, path: PathKey[], at: (o: number) => { line: number; column: number }) {
  // Walk up until a node with a source range is found (a missing field has none).
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : (doc.getIn(path.slice(0, n), true) as Node | undefined)
    if (node && typeof node === 'object' && 'range' in node && node.range) {
      return at(node.range[0])
    }
  }
  return { line: 1, column: 1 }
}

function schemaProblem(
  doc: Document,
  raw: unknown,
  err: ErrorObject,
  at: (o: number) => { line: number; column: number },
): ConfigProblem {
  const path: PathKey[] = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s))
  const where = describe(path)
  // The field a list item belongs to (`hosts` for certificates/0/hosts/1).
  const field = String(path.findLast((k) => typeof k === 'string') ?? '')
  const params = err.params as Record<string, unknown>

  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      const allowed = allowedKeys(path)
      return {
        ...keyPos(doc, path, key, at),
        message: `unknown field "${key}"${where ? ` in ${where}` : ''}${allowed ? ` (allowed: ${allowed})` : ''}`,
      }
    }
    case 'required':
      return {
        ...nodePos(doc, path, at),
        message: `${where || 'config'} is missing required field "${String(params.missingProperty)}"`,
      }
    case 'enum':
      return {
        ...nodePos(doc, path, at),
        message: `${where}: "${String(valueAt(raw, path))}" is not valid for ${field}; expected one of ${(params.allowedValues as string[]).join(', ')}`,
      }
    case 'pattern':
      return {
        ...nodePos(doc, path, at),
        message: `${where}: ${JSON.stringify(valueAt(raw, path))} ${PATTERN_HINTS[field] ?? 'has an invalid format'}`,
      }
    case 'type':
      return {
        ...nodePos(doc, path, at),
        message: `${where || 'config'} must be ${typeWords(params.type)}, not ${describeValue(valueAt(raw, path))}`,
      }
    default:
      return { ...nodePos(doc, path, at), message: `${where || 'config'} ${err.message ?? 'is invalid'}` }
  }
}

function keyPos(doc: Document, path: PathKey[], key: string, at: (o: number) => { line: number; column: number }) {
  const { isMap, isPair, isScalar } = yaml()
  const parent = path.length === 0 ? doc.contents : doc.getIn(path, true)
  if (isMap(parent)) {
    for (const item of parent.items) {
      if (isPair(item) && isScalar(item.key) && String(item.key.value) === key && item.key.range) {
        return at(item.key.range[0])
      }
    }
  }
  return nodePos(doc, path, at)
}

function allowedKeys(path: PathKey[]): string {
  const section = path[0]
  if (path.length === 0) return 'upstreams, rules, certificates'
  if (section === 'upstreams' && path[2] === 'servers') return Object.keys(configSchema.properties.upstreams.items.properties.servers.items.properties).join(', ')
  if (section === 'upstreams') return Object.keys(configSchema.properties.upstreams.items.properties).join(', ')
  if (section === 'rules') {
    // A policy's own fields (rules/0/redirect, rules/0/requestHeaders/set/0).
    let node: unknown = configSchema.properties.rules.items
    for (const key of path.slice(2)) {
      const n = node as { items?: unknown; properties?: Record<string, unknown> }
      node = typeof key === 'number' ? n.items : n.properties?.[key]
    }
    const props = (node as { properties?: Record<string, unknown> } | undefined)?.properties
    return props === undefined ? '' : Object.keys(props).join(', ')
  }
  if (section === 'certificates') return Object.keys(configSchema.properties.certificates.items.properties).join(', ')
  return ''
}

function valueAt(raw: unknown, path: PathKey[]): unknown {
  let v = raw
  for (const k of path) v = (v as Record<PathKey, unknown> | null)?.[k]
  return v
}

function describe(path: PathKey[]): string {
  if (path.length === 0) return ''
  const [section, index, field] = path
  const noun = section === 'upstreams' ? 'upstream' : section === 'rules' ? 'rule' : section === 'certificates' ? 'certificate' : String(section)
  if (typeof index !== 'number') return String(section)
  if (field === 'servers' && typeof path[3] === 'number') {
    const inner = path[4]
    return `${noun} ${index + 1} server ${path[3] + 1}${inner === undefined ? '' : ` field "${String(inner)}"`}`
  }
  if (section === 'rules' && path.length > 3) {
    // A policy's own field: `timeouts.response`, `requestHeaders.set[1].value`.
    const name = path.slice(2).reduce<string>((out, k) => (typeof k === 'number' ? `${out}[${k + 1}]` : out === '' ? k : `${out}.${k}`), '')
    return `${noun} ${index + 1} field "${name}"`
  }
  return field === undefined ? `${noun} ${index + 1}` : `${noun} ${index + 1} field "${String(field)}"`
}

function typeWords(t: unknown): string {
  const list = (Array.isArray(t) ? t : [t]).filter((x) => x !== 'null').map(String)
  const words = list.map((x) => (x === 'object' ? 'a mapping' : x === 'array' ? 'a list' : x === 'integer' ? 'an integer' : `a ${x}`))
  return words.join(' or ')
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'empty'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `${typeof v} ${JSON.stringify(v)}`
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>()
  return problems
    .filter((p) => {
      const k = `${p.line}:${p.column}:${p.message}`
      if (seen.has(k)) return false
      seen.add(k)
      return true
    })
    .sort((a, b) => a.line - b.line || a.column - b.column)
}
