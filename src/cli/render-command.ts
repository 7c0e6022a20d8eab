// `nanoproxy render FILE...`: the controller's translation, offline. Reads
// Ingress, IngressClass, Service and EndpointSlice objects from YAML (several documents per
// file, `kind: List` too) and prints the proxy config the controller would
// write, so a change can be previewed before it is applied.

import { readFile } from 'node:fs/promises'
import { parseAllDocuments } from 'yaml'
import { serializeConfig } from '../controller/config-writer.ts'
import { controllerOptions } from '../controller/controller-settings.ts'
import type { EndpointSlice, Ingress, IngressClass, Secret, Service } from '../controller/snapshot.ts'
import { translateTls } from '../controller/tls-translate.ts'
import { translate } from '../controller/translate.ts'

interface KubeObject {
  kind?: string
  items?: KubeObject[]
  metadata?: { name?: string; namespace?: string }
}

export async function runRender(files: string[], env: Record<string, string | undefined>): Promise<number> {
  const ingresses: Ingress[] = []
  const ingressClasses: IngressClass[] = []
  const services: Service[] = []
  const secrets: Secret[] = []
  const endpointSlices: EndpointSlice[] = []
  const problems: string[] = []

  const add = (obj: KubeObject, where: string): void => {
    switch (obj.kind) {
      case 'List':
        for (const item of obj.items ?? []) add(item, where)
        return
      case 'Ingress':
        ingresses.push(withNamespace(obj) as Ingress)
        return
      case 'IngressClass':
        ingressClasses.push(obj as IngressClass)
        return
      case 'Service':
        services.push(withNamespace(obj) as Service)
        return
      case 'Secret':
        secrets.push(withNamespace(obj) as Secret)
        return
      case 'EndpointSlice':
        endpointSlices.push(withNamespace(obj) as EndpointSlice)
        return
      default:
        // Other kinds (Deployments next to the Ingress, say) are not ours to read.
        process.stderr.write(`${where}: skipping kind ${JSON.stringify(obj.kind)}\n`)
    }
  }

  for (const file of files) {
    const text = await readFile(file, 'utf8')
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) {
        for (const e of doc.errors) problems.push(`${file}:${e.linePos?.[0].line ?? 0}:${e.linePos?.[0].col ?? 0}: ${e.message.split('\n')[0]}`)
        continue
      }
      const obj = doc.toJS() as KubeObject | null
      if (obj && typeof obj === 'object') add(obj, file)
    }
  }
  if (problems.length > 0) {
    process.stderr.write(problems.join('\n') + '\n')
    return 1
  }

  const options = controllerOptions(env)
  const { config, diagnostics, owned } = translate({ ingresses, ingressClasses, services, endpointSlices }, options)
  // spec.tls → certificates, when there is anything to say about TLS.
  if (secrets.length > 0 || owned.some((i) => (i.spec?.tls?.length ?? 0) > 0) || options.defaultTlsSecret) {
    const tls = translateTls(owned, secrets, options.defaultTlsSecret, options.hsts)
    config.certificates = tls.certificates
    diagnostics.push(...tls.diagnostics)
  }
  for (const d of diagnostics) process.stderr.write(`Warning ${d.namespace}/${d.name} ${d.reason}: ${d.message}\n`)
  process.stdout.write(serializeConfig(config))
  return 0
}

/** Objects in a file without a namespace land in `default`, as kubectl apply puts them. */
function withNamespace(obj: KubeObject): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, namespace: obj.metadata?.namespace ?? 'default' } }
}
