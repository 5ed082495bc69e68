// The sandbox kubelet: registers its Node, runs the pods the scheduler binds to it as processes in network
// namespaces of their own (see pod-worker.ts), and serves port-forward and logs to the API server.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { KubeApiError, ResilientInformer } from '../../k8s/resilient-informer.js';
import { silentLogger, type Logger } from '../../log/logger.js';
import { loadImageTable } from './images.js';
import { Ipam } from './ipam.js';
import { kubeApi, type KubeApi } from './kube-api.js';
import { registerNode, reportNodeStatus, type NodeFacts } from './node.js';
import { ensureGateways, requireBridge } from './pod-network.js';
import { PodWorker, type WorkerContext } from './pod-worker.js';
import { cleanupKubelet } from './records.js';
import { startKubeletServer } from './server.js';
import type { Pod } from './types.js';

export { cleanupKubelet } from './records.js';

export interface KubeletOptions {
  kubeconfig: string;
  nodeName: string;
  nodeIP: string;
  /** The kubelet API's port (10250 by default). */
  port?: number;
  /** One IPv4 CIDR, optionally one IPv6. */
  podCidrs: string[];
  bridge: string;
  netnsPrefix: string;
  stateDir: string;
  clusterDns?: string;
  clusterDomain?: string;
  kubernetesServiceHost?: string;
  kubernetesServicePort?: number;
  imageMap?: string;
  /** The node's resolver configuration, which dnsPolicy Default pods get (as the kubelet's --resolv-conf); /etc/resolv.conf by default. */
  resolvConf?: string;
  log?: Logger;
  /** Seconds between node heartbeats (10). */
  heartbeatSeconds?: number;
}

export interface Kubelet {
  /** Stops every pod, deletes their namespaces, marks the node NotReady. */
  stop(): Promise<void>;
}

function caPemOf(kc: KubeConfig): string {
  const cluster = kc.getCurrentCluster();
  if (cluster?.caData) return Buffer.from(cluster.caData, 'base64').toString('utf8');
  if (cluster?.caFile) return readFileSync(cluster.caFile, 'utf8');
  throw new Error('the kubeconfig has no certificate authority for its cluster: pods could not check the API server');
}

function readNodeResolvConf(file = '/etc/resolv.conf'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const REGISTER_PATIENCE_MS = 60_000;

/** Registers the node, waiting (as a kubelet does) for an API server that is not answering yet or answers 5xx. */
async function registerWhenReachable(api: KubeApi, facts: NodeFacts, log: Logger): Promise<void> {
  const deadline = Date.now() + REGISTER_PATIENCE_MS;
  for (let delay = 500; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      await registerNode(api, facts);
      return;
    } catch (error) {
      const transient = error instanceof KubeApiError && (error.statusCode === 0 || error.statusCode >= 500);
      if (!transient || Date.now() + delay > deadline) throw error;
      log.warn('cannot register the node yet; retrying', { error: (error as Error).message, retryInMs: delay });
      await sleep(delay);
    }
  }
}

export async function startKubelet(options: KubeletOptions): Promise<Kubelet> {
  const log = options.log ?? silentLogger;
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(options.kubeconfig);
  } catch (error) {
    throw new Error(`cannot read the kubeconfig ${options.kubeconfig}: ${(error as Error).message}; give --kubeconfig an admin kubeconfig file`);
  }
  const api = kubeApi(kc);
  const facts: NodeFacts = { nodeName: options.nodeName, nodeIP: options.nodeIP, port: options.port ?? 10250, podCidrs: options.podCidrs };
  const images = loadImageTable(options.imageMap);
  const caPem = caPemOf(kc);

  await requireBridge(options.bridge);
  // Whatever a crashed predecessor left: its pods start again from scratch below.
  const leftovers = await cleanupKubelet(options.stateDir);
  if (leftovers.length > 0) log.info('cleaned up pods of an earlier run', { pods: leftovers.map((r) => `${r.namespace}/${r.name}`) });
  // First, so that a node of that name with other pod CIDRs stops us before anything is changed.
  await registerWhenReachable(api, facts, log);
  const gateways = await ensureGateways(options.bridge, options.podCidrs);
  const ipam = new Ipam(options.podCidrs, join(options.stateDir, 'ipam.json'));

  const workers = new Map<string, PodWorker>();
  // A pod recreated under the same name (another uid) must wait until its predecessor's namespace is gone.
  const teardowns = new Map<string, Promise<void>>();
  const ctx: WorkerContext = {
    api,
    ipam,
    log,
    nodeName: options.nodeName,
    nodeIP: options.nodeIP,
    bridge: options.bridge,
    gateways,
    netnsPrefix: options.netnsPrefix,
    stateDir: options.stateDir,
    dns: { clusterDns: options.clusterDns, clusterDomain: options.clusterDomain ?? 'cluster.local', nodeResolvConf: readNodeResolvConf(options.resolvConf) },
    kubernetesServiceHost: options.kubernetesServiceHost,
    kubernetesServicePort: options.kubernetesServicePort,
    images,
    imageMapFile: options.imageMap,
    caPem,
  };

  const server = await startKubeletServer({
    address: options.nodeIP,
    port: facts.port,
    certDir: join(options.stateDir, 'pki'),
    nodeName: options.nodeName,
    log,
    lookupPod: (namespace, name) => {
      for (const worker of workers.values()) {
        const meta = worker.current.metadata;
        if (meta.name === name && (meta.namespace ?? 'default') === namespace && !worker.isTerminating && worker.podIP !== undefined) {
          return { dial: (port) => worker.dialer.dial(port), containers: worker.current.spec.containers.map((c) => c.name), logFile: (c) => worker.logFile(c) };
        }
      }
      return null;
    },
  });

  const readySince = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  try {
    await reportNodeStatus(api, facts, true, readySince);
  } catch (error) {
    server.close();
    throw error;
  }
  log.info('node registered', { node: options.nodeName, podCidrs: options.podCidrs });
  let stopping = false;
  const beat = async (): Promise<void> => {
    try {
      await reportNodeStatus(api, facts, true, readySince);
    } catch (error) {
      log.warn('node heartbeat failed', { error: (error as Error).message });
      // Someone deleted the Node: register it again, as a kubelet does.
      if (error instanceof KubeApiError && error.statusCode === 404) await registerNode(api, facts).catch(() => undefined);
    }
  };
  const heartbeat = setInterval(() => {
    if (!stopping) void beat();
  }, (options.heartbeatSeconds ?? 10) * 1000);

  const startWorker = (pod: Pod): PodWorker => {
    const worker = new PodWorker(pod, ctx);
    workers.set(pod.metadata.uid, worker);
    const before = teardowns.get(worker.netns) ?? Promise.resolve();
    worker.start(before);
    return worker;
  };
  const forget = (worker: PodWorker, why: 'deleted' | 'gone'): void => {
    const done = worker.terminate(why).finally(() => {
      workers.delete(worker.uid);
      if (teardowns.get(worker.netns) === done) teardowns.delete(worker.netns);
    });
    teardowns.set(worker.netns, done);
  };

  const informer = new ResilientInformer<KubernetesObject>({
    kubeConfig: kc,
    path: '/api/v1/pods',
    fieldSelector: `spec.nodeName=${options.nodeName}`,
    debounceMs: 50,
    log,
  });
  let firstList = true;
  informer.on('change', (objects) => {
    if (stopping) return;
    // The API server's JSON, whose times are strings (client-node's types say Date).
    const pods = objects as unknown as Pod[];
    const seen = new Set<string>();
    for (const pod of pods) {
      seen.add(pod.metadata.uid);
      let worker = workers.get(pod.metadata.uid);
      const deleting = pod.metadata.deletionTimestamp !== undefined;
      if (worker === undefined) {
        // A finished pod (an earlier run's) stays as it is until it is deleted.
        const finished = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
        if (finished && !deleting) continue;
        worker = startWorker(pod);
      } else {
        worker.update(pod);
      }
      if (deleting && !worker.isTerminating) forget(worker, 'deleted');
    }
    for (const worker of workers.values()) if (!seen.has(worker.uid) && !worker.isTerminating) forget(worker, 'gone');
    if (firstList) {
      firstList = false;
      // Addresses of pods deleted while the kubelet was down are free again.
      ipam.retain(new Set(seen));
    }
  });
  informer.start();

  return {
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      informer.stop();
      clearInterval(heartbeat);
      await Promise.all([...workers.values()].map((w) => w.terminate('shutdown')));
      await Promise.all(teardowns.values());
      server.close();
      server.closeAllConnections();
      await reportNodeStatus(api, facts, false, new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')).catch((error: unknown) =>
        log.warn('cannot mark the node NotReady', { error: (error as Error).message }),
      );
    },
  };
}
