// The sandbox's kube-proxy: watches Services and EndpointSlices and keeps one nftables table in step with them,
// reloading it whole and atomically (`nft -f -`) after each burst of changes. Runs as root in the node's netns.

import type { KubeConfig, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ResilientInformer } from '../../k8s/resilient-informer.js';
import { silentLogger, type Logger } from '../../log/logger.js';
import { runCommand } from '../host-commands.js';
import { clusterIPsFromApi, proxyServicesFromApi } from './from-api.js';
import { ENDPOINT_SLICES_PATH, kubeProxyRules } from './rbac.js';
import { NFT_TABLE, renderRuleset } from './ruleset.js';

export interface KubeProxyOptions {
  kubeConfig: KubeConfig;
  /** nftables table (family inet) it owns; default kubetun_sandbox. */
  table?: string;
  /** The node's addresses: where NodePorts listen. */
  nodeAddresses?: readonly string[];
  /** The service CIDRs (the API server's --service-cluster-ip-range): their unallocated addresses are dropped. */
  serviceCidrs?: readonly string[];
  /** Wait this long after a change for more before reloading (default 100 ms). */
  debounceMs?: number;
  log?: Logger;
}

export interface KubeProxy {
  /** Resolves once the first ruleset (after the first list of both) is loaded. */
  readonly ready: Promise<void>;
  /** Stops watching and deletes the table. */
  stop(): Promise<void>;
}

const RETRY_MS = 1_000;

async function nft(input: string): Promise<void> {
  await runCommand('nft', ['-f', '-'], { input });
}

export function startKubeProxy(options: KubeProxyOptions): KubeProxy {
  const table = options.table ?? NFT_TABLE;
  const log = options.log ?? silentLogger;
  const debounceMs = options.debounceMs ?? 100;
  const services = new ResilientInformer<V1Service>({ kubeConfig: options.kubeConfig, path: '/api/v1/services', debounceMs });
  // v1beta1: what the sandbox's Kubernetes 1.20 serves (v1 came with 1.21).
  const slices = new ResilientInformer<V1EndpointSlice>({ kubeConfig: options.kubeConfig, path: ENDPOINT_SLICES_PATH, debounceMs });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let loaded: string | undefined;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const load = async (): Promise<void> => {
    do {
      again = false;
      const text = renderRuleset(table, proxyServicesFromApi(services.items(), slices.items(), options.nodeAddresses ?? []), {
        clusterIPs: clusterIPsFromApi(services.items()),
        serviceCidrs: options.serviceCidrs ?? [],
      });
      if (text === loaded) continue;
      try {
        await nft(text);
        loaded = text;
        log.info('loaded the service rules', { table, services: services.items().length, endpointSlices: slices.items().length });
        markReady();
      } catch (error) {
        log.error('cannot load the service rules; retrying', { table, error: (error as Error).message, retryInMs: RETRY_MS });
        schedule(RETRY_MS);
      }
    } while (again && !stopped);
  };

  const sync = (): void => {
    timer = undefined;
    if (stopped || !services.synced || !slices.synced) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = load().finally(() => (running = undefined));
  };

  function schedule(delayMs: number): void {
    if (stopped || timer !== undefined) return;
    timer = setTimeout(sync, delayMs);
  }

  for (const informer of [services, slices]) {
    informer.on('change', () => schedule(debounceMs));
    informer.on('error', (error) => {
      const hint = /\b403\b/.test(error.message) ? `; it needs ${JSON.stringify(kubeProxyRules)}` : '';
      log.error(`cannot watch the API (retrying)${hint}`, { error: error.message });
    });
    informer.start();
  }

  return {
    ready,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      services.stop();
      slices.stop();
      await running;
      try {
        // `table` first makes the delete succeed when the table was never loaded.
        await nft(`table inet ${table}\ndelete table inet ${table}\n`);
      } catch (error) {
        log.error('cannot delete the service rules', { table, error: (error as Error).message });
      }
    },
  };
}
