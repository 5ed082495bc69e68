// Finds the traffic manager in a cluster the way `kubetun install` deployed it: Service traffic-manager in the
// manager namespace, and a Ready pod behind its selector (not one being deleted) with the port the Service
// targets. Asked again for every new port-forward, so a pod replaced by its Deployment is found under its new name.

import { ApiException, CoreV1Api, type KubeConfig, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { describeApiError, timedApiConfiguration } from './kube-client.js';
import type { PortForwardTarget } from './port-forward.js';

export const MANAGER_SERVICE = 'traffic-manager';
export const DEFAULT_MANAGER_NAMESPACE = 'kubetun';

export class ManagerLocatorError extends Error {
  override readonly name = 'ManagerLocatorError';

  /** `waitable`: the manager is installed but has no ready pod yet, which its Deployment may soon bring. */
  constructor(
    message: string,
    readonly waitable = false,
  ) {
    super(message);
  }
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Why a pod is not Ready, in the words its status gives (a container's waiting reason, an unschedulable pod…). */
export function notReadyReason(pod: V1Pod): string {
  if (pod.metadata?.deletionTimestamp) return 'it is being deleted';
  const status = pod.status;
  for (const container of status?.containerStatuses ?? []) {
    const waiting = container.state?.waiting;
    if (waiting?.reason) return `container ${container.name} is waiting: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`;
    const terminated = container.state?.terminated;
    if (terminated) return `container ${container.name} terminated: ${terminated.reason ?? `exit code ${terminated.exitCode}`}`;
    if (container.state?.running && !container.ready) return `container ${container.name} is running but not ready (its readiness probe has not passed)`;
  }
  const conditions = status?.conditions ?? [];
  const unscheduled = conditions.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) return `it is not scheduled: ${unscheduled.message ?? unscheduled.reason ?? 'no reason given'}`;
  const notReady = conditions.find((c) => c.type === 'Ready' && c.status !== 'True');
  if (notReady?.message) return notReady.message;
  return `it is ${status?.phase ?? 'Pending'}${pod.spec?.nodeName ? ` on node ${pod.spec.nodeName}` : ', not yet on a node'}`;
}

/** The pod to forward to: a Ready one, the newest first; throws naming why none is ready. */
export function pickManagerPod(pods: V1Pod[], namespace: string, selector: string): V1Pod {
  const live = pods
    .filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) => (b.metadata?.creationTimestamp?.getTime() ?? 0) - (a.metadata?.creationTimestamp?.getTime() ?? 0));
  const ready = live.find(isReady);
  if (ready !== undefined) return ready;
  const waiting = live[0] ?? pods[0];
  if (waiting === undefined) {
    throw new ManagerLocatorError(
      `no traffic manager pod in namespace ${namespace} matches the selector ${selector} of Service ${MANAGER_SERVICE}: ` +
        `check its Deployment (kubectl -n ${namespace} describe deployment ${MANAGER_SERVICE}) or run \`kubetun install\` again`,
      true,
    );
  }
  throw new ManagerLocatorError(`the traffic manager pod ${waiting.metadata?.name ?? '?'} is not ready: ${notReadyReason(waiting)}`, true);
}

/** The container port the Service's port leads to in this pod (a named targetPort is looked up in the pod). */
export function targetPortOf(service: V1Service, pod: V1Pod): number {
  const ports = service.spec?.ports ?? [];
  const port = ports.find((p) => p.name === 'api') ?? ports[0];
  if (port === undefined) throw new ManagerLocatorError(`Service ${MANAGER_SERVICE} in namespace ${service.metadata?.namespace} has no ports: run \`kubetun install\` again`);
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  if (/^[0-9]+$/.test(target)) return Number(target);
  for (const container of pod.spec?.containers ?? []) {
    const named = container.ports?.find((p) => p.name === target);
    if (named !== undefined) return named.containerPort;
  }
  throw new ManagerLocatorError(`the traffic manager pod ${pod.metadata?.name} has no container port named "${target}" (Service ${MANAGER_SERVICE}'s targetPort)`);
}

/** Where to port-forward to reach the traffic manager installed in `namespace`. Throws ManagerLocatorError. */
export async function locateManager(config: KubeConfig, namespace: string = DEFAULT_MANAGER_NAMESPACE): Promise<PortForwardTarget> {
  const core = new CoreV1Api(timedApiConfiguration(config));
  let service: V1Service;
  try {
    service = await core.readNamespacedService({ name: MANAGER_SERVICE, namespace });
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) {
      throw new ManagerLocatorError(
        `the traffic manager is not installed in namespace ${namespace} of ${config.getCurrentCluster()?.server ?? 'the cluster'} ` +
          `(no Service ${MANAGER_SERVICE} there): run \`kubetun install\` (or pass --manager-namespace)`,
      );
    }
    throw new ManagerLocatorError(describeApiError(error, `read Service ${MANAGER_SERVICE} in namespace ${namespace}`, config));
  }
  const selector = Object.entries(service.spec?.selector ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  if (selector === '') throw new ManagerLocatorError(`Service ${MANAGER_SERVICE} in namespace ${namespace} has no selector: run \`kubetun install\` again`);
  let pods: V1Pod[];
  try {
    pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
  } catch (error) {
    throw new ManagerLocatorError(describeApiError(error, `list the traffic manager's pods in namespace ${namespace}`, config));
  }
  const pod = pickManagerPod(pods, namespace, selector);
  return { namespace, pod: pod.metadata?.name ?? '', port: targetPortOf(service, pod) };
}

/**
 * As locateManager, but while the manager has no ready pod (a rollout, a pod being replaced) it asks again every
 * second for up to `waitMs`, telling `onWait` why it waits; the last error, with the time waited, if none comes.
 */
export async function awaitManager(
  config: KubeConfig,
  namespace: string,
  waitMs: number,
  onWait: (why: string) => void = () => undefined,
): Promise<PortForwardTarget> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await locateManager(config, namespace);
    } catch (error) {
      if (!(error instanceof ManagerLocatorError) || !error.waitable) throw error;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw waitMs === 0 ? error : new ManagerLocatorError(`${error.message} (waited ${Math.round(waitMs / 1000)} s; --manager-timeout sets how long)`, true);
      }
      if (attempt === 0) onWait(error.message);
      await new Promise((r) => setTimeout(r, Math.min(1000, left)));
    }
  }
}
