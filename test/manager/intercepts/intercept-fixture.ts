// What the intercept tests share: an in-memory Kubernetes API (a test double for the API server, which cannot run
// in these unit tests; kube-workload-api.test.ts runs the real client against a real one), and HTTP/2
// connections to a manager that carry both RPCs and extended CONNECT streams, as agents and clients do.

import * as http2 from 'node:http2';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import type { DescService } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { AgentInfoSchema } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { ControlSession } from '../../../src/tunnel/control-session.js';
import { AGENT_CONTAINER } from '../../../src/agent/agent-contract.js';
import {
  WorkloadApiError,
  type Pod,
  type Service,
  type TemplatePatch,
  type Workload,
  type WorkloadApi,
  type WorkloadRef,
} from '../../../src/manager/intercepts/workload-api.js';

/** A test double for the Kubernetes API: objects in maps, patches applied to the template and recorded. */
export class MemoryWorkloadApi implements WorkloadApi {
  readonly workloads: Workload[] = [];
  readonly services: Service[] = [];
  readonly pods: Pod[] = [];
  readonly patches: { ref: WorkloadRef; patch: TemplatePatch }[] = [];
  /** Answer patches with this HTTP status (e.g. 403). */
  patchStatus: number | undefined;

  private find(ref: WorkloadRef): Workload | undefined {
    return this.workloads.find((w) => w.kind === ref.kind && w.namespace === ref.namespace && w.name === ref.name);
  }

  getWorkload(ref: WorkloadRef): Promise<Workload | undefined> {
    const found = this.find(ref);
    return Promise.resolve(found === undefined ? undefined : structuredClone(found));
  }

  listWorkloads(namespace: string | undefined): Promise<Workload[]> {
    return Promise.resolve(this.workloads.filter((w) => namespace === undefined || w.namespace === namespace).map((w) => structuredClone(w)));
  }

  listServices(namespace: string | undefined): Promise<Service[]> {
    return Promise.resolve(this.services.filter((s) => namespace === undefined || s.namespace === namespace));
  }

  patchTemplate(ref: WorkloadRef, patch: TemplatePatch): Promise<void> {
    if (this.patchStatus !== undefined) return Promise.reject(new WorkloadApiError(`PATCH: ${this.patchStatus} forbidden`, this.patchStatus));
    const workload = this.find(ref);
    if (workload === undefined) return Promise.reject(new WorkloadApiError('PATCH: 404 not found', 404));
    this.patches.push({ ref, patch });
    Object.assign(workload.templateLabels, patch.labels ?? {});
    for (const [key, value] of Object.entries(patch.annotations ?? {})) {
      if (value === null) delete workload.templateAnnotations[key];
      else workload.templateAnnotations[key] = value;
    }
    return Promise.resolve();
  }

  getPod(namespace: string, name: string): Promise<Pod | undefined> {
    return Promise.resolve(this.pods.find((p) => p.namespace === namespace && p.name === name));
  }

  /** The double's pods carry no labels: every pod of the namespace counts. */
  listPods(namespace: string): Promise<Pod[]> {
    return Promise.resolve(this.pods.filter((p) => p.namespace === namespace));
  }
}

/** `echo` in default: a Deployment (app container `echo`, port 8080 named http) and a Service echo:80 → http. */
export function echoApi(): MemoryWorkloadApi {
  const api = new MemoryWorkloadApi();
  api.workloads.push(
    {
      kind: 'Deployment',
      namespace: 'default',
      name: 'echo',
      replicas: 1,
      templateLabels: { app: 'echo' },
      templateAnnotations: {},
      containers: [{ name: 'echo', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }],
      owner: undefined,
    },
    {
      kind: 'ReplicaSet',
      namespace: 'default',
      name: 'echo-5d9f',
      replicas: 1,
      templateLabels: { app: 'echo' },
      templateAnnotations: {},
      containers: [],
      owner: { kind: 'Deployment', name: 'echo' },
    },
  );
  api.services.push({ namespace: 'default', name: 'echo', selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] });
  return api;
}

/** A pod of echo running the agent at `ip`. */
export function echoPod(name: string, ip: string): Pod {
  return { namespace: 'default', name, podIps: [ip], containers: ['echo', AGENT_CONTAINER], owner: { kind: 'ReplicaSet', name: 'echo-5d9f' }, terminating: false };
}

/** What echo's agent in `pod` says of itself (port 8080 taken by name). */
export const echoAgentInfo = (pod: string, replaced = false): MessageInitShape<typeof AgentInfoSchema> => ({
  pod,
  namespace: 'default',
  workload: 'echo',
  kind: 'Deployment',
  container: 'echo',
  ports: [{ agentPort: 9900, containerPort: 8080, name: 'http', protocol: 'TCP', takeover: 'named-port' }],
  environment: { GREETING: 'hi' },
  replaced,
});

export interface H2Peer {
  session: http2.ClientHttp2Session;
  client<T extends DescService>(service: T): Client<T>;
  close(): void;
}

/** One HTTP/2 connection (settings received, so extended CONNECT may be sent) for RPCs and streams. */
export async function connectPeer(url: string): Promise<H2Peer> {
  const session = http2.connect(url);
  await new Promise<void>((resolve, reject) => {
    session.once('error', reject);
    session.once('remoteSettings', () => resolve());
  });
  session.on('error', () => undefined);
  const transport = createGrpcTransport({ baseUrl: url, sessionManager: new ControlSession(url, session) as never });
  return { session, client: (service) => createClient(service, transport), close: () => session.close() };
}

/** The response headers of a stream (or the reset that came instead). */
export function responseOf(stream: http2.ClientHttp2Stream): Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader> {
  return new Promise((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
    stream.once('close', () => reject(new Error(`closed without a response (rst ${stream.rstCode})`)));
  });
}
