// Kubernetes Events about one pod, as the kubelet records them (source kubelet, involvedObject the pod and the
// container's field path): what `kubectl describe pod` lists and what `kubetun intercept` quotes when an agent
// does not arrive. A repeat of the same event bumps its count instead of creating another, as the kubelet's
// recorder does, so a container retried every few seconds leaves one event, not hundreds.

import type { Logger } from '../../log/logger.js';
import type { KubeApi } from './kube-api.js';
import type { Pod } from './types.js';

export interface PodEventOptions {
  /** The container the event is about (spec.containers{name} or spec.initContainers{name}). */
  container?: { name: string; init: boolean };
  type?: 'Normal' | 'Warning';
}

interface Recorded {
  name: string;
  count: number;
  /** The event's creation (or last count update) is under way: a repeat waits for it. */
  pending: Promise<void>;
}

// Events of one pod that the recorder remembers for counting; older kinds are forgotten (the next one is new).
const MAX_REMEMBERED = 32;
// A message the API server would refuse (it caps it at 1 KiB) is cut.
const MAX_MESSAGE = 1024;

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

let sequence = 0;

/** The kubelet's event name: the pod's name and a unique hexadecimal suffix (its time in nanoseconds there). */
function eventName(pod: string): string {
  sequence = (sequence + 1) % 1000;
  return `${pod}.${(BigInt(Date.now()) * 1_000_000n + BigInt(process.pid % 1000) * 1000n + BigInt(sequence)).toString(16)}`;
}

export class PodEventRecorder {
  private readonly recorded = new Map<string, Recorded>();

  constructor(
    private readonly api: KubeApi,
    private readonly log: Logger,
    private readonly nodeName: string,
  ) {}

  /** Records the event in the background; failures are logged, never thrown. */
  record(pod: Pod, reason: string, message: string, options: PodEventOptions = {}): void {
    const type = options.type ?? 'Warning';
    const fieldPath = options.container === undefined ? undefined : `spec.${options.container.init ? 'initContainers' : 'containers'}{${options.container.name}}`;
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const key = JSON.stringify([pod.metadata.uid, fieldPath, type, reason, text]);
    const previous = this.recorded.get(key);
    const namespace = pod.metadata.namespace ?? 'default';
    if (previous !== undefined) {
      previous.count++;
      const count = previous.count;
      previous.pending = previous.pending.then(() =>
        this.send('PATCH', `/api/v1/namespaces/${namespace}/events/${previous.name}`, { count, lastTimestamp: timestamp() }, reason),
      );
      return;
    }
    const name = eventName(pod.metadata.name);
    const now = timestamp();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        namespace,
        name: pod.metadata.name,
        uid: pod.metadata.uid,
        ...(pod.metadata.resourceVersion === undefined ? {} : { resourceVersion: pod.metadata.resourceVersion }),
        ...(fieldPath === undefined ? {} : { fieldPath }),
      },
      reason,
      message: text,
      type,
      source: { component: 'kubelet', host: this.nodeName },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      reportingComponent: 'kubelet',
      reportingInstance: this.nodeName,
    };
    if (this.recorded.size >= MAX_REMEMBERED) this.recorded.delete(this.recorded.keys().next().value!);
    this.recorded.set(key, { name, count: 1, pending: this.send('POST', `/api/v1/namespaces/${namespace}/events`, event, reason) });
  }

  private async send(method: string, path: string, body: unknown, reason: string): Promise<void> {
    try {
      await this.api.request(method, path, body);
    } catch (error) {
      this.log.warn('cannot record an event', { reason, error: (error as Error).message });
    }
  }
}
