// Why a workload's agent did not arrive, in the cluster's own words: the latest Warning event of its pods (image
// pull failed, the webhook refused, the scheduler found no node), read with the user's kubeconfig.

import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { timedApiConfiguration } from '../k8s/kube-client.js';

const EVENTS_TIMEOUT_MS = 5_000;
/** Bounds what one failed intercept reads: a namespace can hold many events. */
const MAX_EVENTS = 500;

function eventTime(event: CoreV1Event): number {
  const at = event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp ?? event.metadata.creationTimestamp;
  return at === undefined ? 0 : new Date(at).getTime();
}

/**
 * `reason: message (on pod X)` of the newest Warning about one of `pods`, or about an object named after the
 * workload (its ReplicaSets and pods, when no pod is known yet); undefined when there is none or the API cannot be
 * read (this only adds to an error message).
 */
export async function latestWarning(config: KubeConfig, namespace: string, workload: string, pods: readonly string[]): Promise<string | undefined> {
  try {
    const core = new CoreV1Api(timedApiConfiguration(config, EVENTS_TIMEOUT_MS));
    const list = await core.listNamespacedEvent({ namespace, fieldSelector: 'type=Warning', limit: MAX_EVENTS });
    const concerns = (name: string): boolean => pods.includes(name) || name.startsWith(`${workload}-`);
    const latest = list.items
      .filter((e) => concerns(e.involvedObject.name ?? ''))
      .reduce<CoreV1Event | undefined>((best, e) => (best === undefined || eventTime(e) >= eventTime(best) ? e : best), undefined);
    if (latest === undefined) return undefined;
    return `${latest.reason ?? 'Warning'}: ${latest.message ?? ''} (on ${latest.involvedObject.kind ?? 'object'} ${latest.involvedObject.name})`.trim();
  } catch {
    return undefined;
  }
}
