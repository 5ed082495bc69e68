// The ConfigMaps and Secrets a container's environment names (env[].valueFrom and envFrom[]), read through the
// API before the container starts, and the errors the kubelet reports when one it needs is missing (the container
// then waits with CreateContainerConfigError until it appears).

import { KubeApiError } from '../../k8s/resilient-informer.js';
import type { KubeApi } from './kube-api.js';
import type { Container } from './types.js';

/** The container cannot be configured (a missing ConfigMap, Secret or key): reason CreateContainerConfigError. */
export class ContainerConfigError extends Error {
  override readonly name = 'ContainerConfigError';
}

export type SourceKind = 'configmap' | 'secret';

/** What was read: the object's data (Secret values decoded), or null when the object does not exist. */
export interface EnvSources {
  configMaps: ReadonlyMap<string, Readonly<Record<string, string>> | null>;
  secrets: ReadonlyMap<string, Readonly<Record<string, string>> | null>;
}

export const NO_ENV_SOURCES: EnvSources = { configMaps: new Map(), secrets: new Map() };

/** The names of the ConfigMaps and Secrets the container's environment refers to. */
export function referencedSources(container: Pick<Container, 'env' | 'envFrom'>): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef !== undefined) configMaps.add(from.configMapRef.name ?? '');
    if (from.secretRef !== undefined) secrets.add(from.secretRef.name ?? '');
  }
  for (const variable of container.env ?? []) {
    const ref = variable.valueFrom;
    if (ref?.configMapKeyRef !== undefined) configMaps.add(ref.configMapKeyRef.name ?? '');
    if (ref?.secretKeyRef !== undefined) secrets.add(ref.secretKeyRef.name ?? '');
  }
  return { configMaps: [...configMaps], secrets: [...secrets] };
}

// The API server's rule for both kinds' names (a DNS subdomain): checked here too, since a name becomes a path.
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

async function readData(api: KubeApi, kind: SourceKind, namespace: string, name: string): Promise<Record<string, string> | null> {
  if (!OBJECT_NAME.test(name)) throw new ContainerConfigError(`"${name}" is not a ${kind} name`);
  const collection = kind === 'configmap' ? 'configmaps' : 'secrets';
  let object: { data?: Record<string, string> };
  try {
    object = await api.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/${collection}/${name}`);
  } catch (error) {
    if (error instanceof KubeApiError && error.statusCode === 404) return null;
    throw new ContainerConfigError(`cannot read ${kind} "${name}": ${(error as Error).message}`);
  }
  const data = object.data ?? {};
  if (kind === 'configmap') return { ...data };
  return Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
}

/** Reads every ConfigMap and Secret the container's environment names; a missing one is null. */
export async function fetchEnvSources(api: KubeApi, namespace: string, container: Pick<Container, 'env' | 'envFrom'>): Promise<EnvSources> {
  const wanted = referencedSources(container);
  const configMaps = new Map<string, Record<string, string> | null>();
  const secrets = new Map<string, Record<string, string> | null>();
  for (const name of wanted.configMaps) configMaps.set(name, await readData(api, 'configmap', namespace, name));
  for (const name of wanted.secrets) secrets.set(name, await readData(api, 'secret', namespace, name));
  return { configMaps, secrets };
}

/** The object's data; undefined when it is missing and optional; throws, as the kubelet words it, when it is required. */
export function sourceData(sources: EnvSources, kind: SourceKind, name: string, optional: boolean): Readonly<Record<string, string>> | undefined {
  const data = (kind === 'configmap' ? sources.configMaps : sources.secrets).get(name) ?? null;
  if (data !== null) return data;
  if (optional) return undefined;
  throw new ContainerConfigError(`${kind} "${name}" not found`);
}

/** One key of a ConfigMap or Secret; undefined when it (or the object) is missing and optional. */
export function sourceKey(sources: EnvSources, kind: SourceKind, namespace: string, ref: { name?: string; key: string; optional?: boolean }): string | undefined {
  const name = ref.name ?? '';
  const optional = ref.optional === true;
  const data = sourceData(sources, kind, name, optional);
  if (data === undefined) return undefined;
  const value = data[ref.key];
  if (value !== undefined) return value;
  if (optional) return undefined;
  throw new ContainerConfigError(`couldn't find key ${ref.key} in ${kind === 'configmap' ? 'ConfigMap' : 'Secret'} ${namespace}/${name}`);
}
