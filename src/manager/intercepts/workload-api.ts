// What the intercept code needs of the Kubernetes API, as an interface (tests give a double where no API server
// can run), and the real implementation over kubeApiRequest: a few GETs, paged lists and one merge patch. The
// manager never loads @kubernetes/client-node in its pod, so nothing here imports it.

import { kubeApiRequest, type KubeAccess } from '../../k8s/resilient-informer.js';

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'ReplicaSet';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['Deployment', 'StatefulSet', 'ReplicaSet'];

export interface WorkloadRef {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

export interface ContainerPort {
  name: string;
  containerPort: number;
  protocol: 'TCP' | 'UDP';
}

export interface ContainerSpec {
  name: string;
  ports: ContainerPort[];
}

export interface OwnerRef {
  kind: string;
  name: string;
}

/** A workload as the intercept code reads it: its pod template's labels, annotations and containers. */
export interface Workload extends WorkloadRef {
  replicas: number;
  templateLabels: Record<string, string>;
  templateAnnotations: Record<string, string>;
  containers: ContainerSpec[];
  /** The controller owning it (a Deployment for most ReplicaSets). */
  owner: OwnerRef | undefined;
}

export interface ServicePort {
  name: string;
  port: number;
  /** As the Service writes it; absent means the same number as `port`. */
  targetPort: number | string;
  protocol: 'TCP' | 'UDP';
}

export interface Service {
  namespace: string;
  name: string;
  /** Empty: the Service selects no pods (its endpoints are managed by hand). */
  selector: Record<string, string>;
  ports: ServicePort[];
}

export interface Pod {
  namespace: string;
  name: string;
  podIps: string[];
  containers: string[];
  owner: OwnerRef | undefined;
  /** Being deleted, or finished: it takes no new connections. */
  terminating: boolean;
}

/** Changes to a pod template's metadata; a null annotation value removes it. */
export interface TemplatePatch {
  labels?: Record<string, string>;
  annotations?: Record<string, string | null>;
}

/** A refused or failed API call: the HTTP status (0 without an answer) and the server's sentence. */
export class WorkloadApiError extends Error {
  override readonly name = 'WorkloadApiError';
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

export interface WorkloadApi {
  getWorkload(ref: WorkloadRef): Promise<Workload | undefined>;
  /** Every workload of the namespace (undefined: of every namespace). */
  listWorkloads(namespace: string | undefined): Promise<Workload[]>;
  listServices(namespace: string | undefined): Promise<Service[]>;
  patchTemplate(ref: WorkloadRef, patch: TemplatePatch): Promise<void>;
  getPod(namespace: string, name: string): Promise<Pod | undefined>;
  /** The namespace's pods that carry every one of `labels`. */
  listPods(namespace: string, labels: Record<string, string>): Promise<Pod[]>;
}

const RESOURCE: Readonly<Record<WorkloadKind, string>> = { Deployment: 'deployments', StatefulSet: 'statefulsets', ReplicaSet: 'replicasets' };
const PAGE = 500;
/** Lists stop here: the manager answers `kubetun list`, it does not hold a cluster in memory. */
const MAX_ITEMS = 5_000;

type Json = Record<string, unknown>;

const record = (value: unknown): Json => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {});
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const strings = (value: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries(record(value)).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
const protocolOf = (value: unknown): 'TCP' | 'UDP' => (value === 'UDP' ? 'UDP' : 'TCP');

function controllerOf(metadata: Json): OwnerRef | undefined {
  const owners = list(metadata.ownerReferences).map(record);
  const owner = owners.find((o) => o.controller === true) ?? owners[0];
  return owner === undefined ? undefined : { kind: text(owner.kind), name: text(owner.name) };
}

export function workloadFromObject(kind: WorkloadKind, object: unknown): Workload {
  const o = record(object);
  const metadata = record(o.metadata);
  const spec = record(o.spec);
  const template = record(spec.template);
  const templateMetadata = record(template.metadata);
  const containers = list(record(template.spec).containers).map((c): ContainerSpec => {
    const container = record(c);
    const ports = list(container.ports).map((p): ContainerPort => {
      const port = record(p);
      return { name: text(port.name), containerPort: Number(port.containerPort) || 0, protocol: protocolOf(port.protocol) };
    });
    return { name: text(container.name), ports };
  });
  return {
    kind,
    namespace: text(metadata.namespace),
    name: text(metadata.name),
    replicas: typeof spec.replicas === 'number' ? spec.replicas : 1,
    templateLabels: strings(templateMetadata.labels),
    templateAnnotations: strings(templateMetadata.annotations),
    containers,
    owner: controllerOf(metadata),
  };
}

export function serviceFromObject(object: unknown): Service {
  const o = record(object);
  const metadata = record(o.metadata);
  const spec = record(o.spec);
  const ports = list(spec.ports).map((p): ServicePort => {
    const port = record(p);
    const number = Number(port.port) || 0;
    const target = port.targetPort;
    return {
      name: text(port.name),
      port: number,
      targetPort: typeof target === 'number' || (typeof target === 'string' && target !== '') ? target : number,
      protocol: protocolOf(port.protocol),
    };
  });
  return { namespace: text(metadata.namespace), name: text(metadata.name), selector: strings(spec.selector), ports };
}

function podFromObject(object: unknown): Pod {
  const o = record(object);
  const metadata = record(o.metadata);
  const status = record(o.status);
  const ips = list(status.podIPs).map((p) => text(record(p).ip));
  if (text(status.podIP) !== '') ips.push(text(status.podIP));
  return {
    namespace: text(metadata.namespace),
    name: text(metadata.name),
    podIps: [...new Set(ips.filter((ip) => ip !== ''))],
    containers: list(record(o.spec).containers).map((c) => text(record(c).name)),
    owner: controllerOf(metadata),
    terminating: metadata.deletionTimestamp !== undefined || ['Succeeded', 'Failed'].includes(text(status.phase)),
  };
}

const collection = (group: string, resource: string, namespace: string | undefined): string =>
  `${group}${namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`}/${resource}`;

/** The real API server, with the manager's credentials (managerKubeAccess). */
export function kubeWorkloadApi(kube: KubeAccess, timeoutMs = 15_000): WorkloadApi {
  const call = async (method: string, path: string, body?: unknown, contentType?: string): Promise<unknown | undefined> => {
    let answer;
    try {
      answer = await kubeApiRequest(kube, { method, path, timeoutMs, ...(body === undefined ? {} : { body }), ...(contentType === undefined ? {} : { contentType }) });
    } catch (error) {
      throw new WorkloadApiError(`the Kubernetes API did not answer: ${(error as Error).message}`, 0);
    }
    if (answer.statusCode === 404 && method === 'GET') return undefined;
    if (answer.statusCode < 200 || answer.statusCode >= 300) throw new WorkloadApiError(`${method} ${path}: ${answer.statusCode} ${answer.message}`, answer.statusCode);
    return answer.body;
  };
  const listAll = async (path: string, query = ''): Promise<unknown[]> => {
    const items: unknown[] = [];
    let next = '';
    do {
      const body = record(await call('GET', `${path}?${query}limit=${PAGE}${next === '' ? '' : `&continue=${encodeURIComponent(next)}`}`));
      items.push(...list(body.items));
      next = text(record(body.metadata).continue);
    } while (next !== '' && items.length < MAX_ITEMS);
    return items.slice(0, MAX_ITEMS);
  };
  const workloadPath = (ref: WorkloadRef): string => `${collection('/apis/apps/v1', RESOURCE[ref.kind], ref.namespace)}/${encodeURIComponent(ref.name)}`;
  return {
    async getWorkload(ref) {
      const body = await call('GET', workloadPath(ref));
      return body === undefined ? undefined : workloadFromObject(ref.kind, body);
    },
    async listWorkloads(namespace) {
      const all = await Promise.all(
        WORKLOAD_KINDS.map(async (kind) => (await listAll(collection('/apis/apps/v1', RESOURCE[kind], namespace))).map((o) => workloadFromObject(kind, o))),
      );
      return all.flat();
    },
    async listServices(namespace) {
      return (await listAll(collection('/api/v1', 'services', namespace))).map(serviceFromObject);
    },
    async patchTemplate(ref, patch) {
      const metadata: Json = {};
      if (patch.labels !== undefined) metadata.labels = patch.labels;
      if (patch.annotations !== undefined) metadata.annotations = patch.annotations;
      await call('PATCH', workloadPath(ref), { spec: { template: { metadata } } }, 'application/merge-patch+json');
    },
    async getPod(namespace, name) {
      const body = await call('GET', `${collection('/api/v1', 'pods', namespace)}/${encodeURIComponent(name)}`);
      return body === undefined ? undefined : podFromObject(body);
    },
    async listPods(namespace, labels) {
      const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
      return (await listAll(collection('/api/v1', 'pods', namespace), `labelSelector=${encodeURIComponent(selector)}&`)).map(podFromObject);
    },
  };
}
