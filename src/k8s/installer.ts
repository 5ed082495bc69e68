// Applying and removing the traffic manager's objects. Apply is idempotent: an object is created when absent,
// updated in place when it differs from what kubetun wants (an upgrade: new image, new labels) and left alone
// when it already matches. Objects kubetun did not create (no managed-by label) are never changed or deleted.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Namespace,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { DEFAULT_REQUEST_TIMEOUT_MS, describeApiError, timedApiConfiguration } from './kube-client.js';
import { notReadyReason } from './manager-locator.js';
import { MANAGED_BY, MANAGED_BY_LABEL, MANAGER_NAME, selectorLabels, type ManagerManifests } from './manager-manifests.js';
import { createWebhookTls, webhookTlsFromSecretData, webhookTlsProblem, type WebhookTls } from './webhook-tls.js';

const POLL_MS = 1_000;

export class InstallError extends Error {
  override readonly name = 'InstallError';
}

export type ApplyAction = 'created' | 'updated' | 'unchanged' | 'kept';
export type RemoveAction = 'deleted' | 'absent' | 'kept';

/** `Deployment kubetun/traffic-manager`, `ClusterRole kubetun-traffic-manager-kubetun`. */
export function objectName(object: KubernetesObject): string {
  const { namespace, name } = object.metadata ?? {};
  return `${object.kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);

/** Whether `existing` has every field of `desired` with the same value (the server adds defaults; arrays match in full). */
export function covers(existing: unknown, desired: unknown): boolean {
  if (Array.isArray(desired)) return Array.isArray(existing) && existing.length === desired.length && desired.every((d, i) => covers(existing[i], d));
  if (isObject(desired)) return isObject(existing) && Object.entries(desired).every(([key, value]) => value === undefined || covers(existing[key], value));
  return Object.is(existing, desired);
}

/**
 * `existing` with `desired` laid over it: labels merged, each top-level section (spec, rules…) merged one level
 * deep so that fields the server owns (a Service's clusterIP, a ServiceAccount's secrets) are kept.
 */
export function overlay(existing: KubernetesObject, desired: KubernetesObject): KubernetesObject {
  const merged: Record<string, unknown> = {
    ...existing,
    metadata: { ...existing.metadata, labels: { ...existing.metadata?.labels, ...desired.metadata?.labels } },
  };
  for (const [key, value] of Object.entries(desired)) {
    if (key === 'metadata') continue;
    const current = (existing as Record<string, unknown>)[key];
    merged[key] = isObject(value) && isObject(current) ? { ...current, ...value } : value;
  }
  return merged as KubernetesObject;
}

const isManaged = (object: KubernetesObject): boolean => object.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY;

export class Installer {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;

  constructor(
    private readonly config: KubeConfig,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    const configuration = timedApiConfiguration(config, requestTimeoutMs);
    this.objects = new KubernetesObjectApi(configuration);
    this.core = new CoreV1Api(configuration);
  }

  private async call<T>(what: string, run: () => Promise<T>, object?: KubernetesObject): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.failure(error, what, object);
    }
  }

  /** The API's refusal for a person; the webhook's needs a permission ordinary namespace admins lack, so it says so. */
  private failure(error: unknown, what: string, object?: KubernetesObject): InstallError {
    const message = describeApiError(error, what, this.config);
    if (object?.kind !== 'MutatingWebhookConfiguration' || !(error instanceof ApiException) || error.code !== 403) return new InstallError(message);
    return new InstallError(
      `${message}. kubetun's agent injector needs permission to get, create, update and delete mutatingwebhookconfigurations ` +
        '(admissionregistration.k8s.io, cluster-scoped); ask a cluster admin to grant it, or to run this command',
    );
  }

  /** The object as the cluster has it, or null when it does not exist. */
  private async read(object: KubernetesObject): Promise<KubernetesObject | null> {
    try {
      return await this.objects.read({ apiVersion: object.apiVersion!, kind: object.kind!, metadata: { name: object.metadata!.name!, namespace: object.metadata?.namespace } });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return null;
      throw this.failure(error, `read ${objectName(object)}`, object);
    }
  }

  /** Creates, updates or keeps one object. A Namespace kubetun did not create is used as it is ('kept'). */
  async apply(desired: KubernetesObject): Promise<ApplyAction> {
    const name = objectName(desired);
    const existing = await this.read(desired);
    if (existing === null) {
      await this.call(`create ${name}`, () => this.objects.create(desired), desired);
      return 'created';
    }
    if (desired.kind === 'Namespace' && (existing as V1Namespace).status?.phase === 'Terminating') {
      throw new InstallError(`namespace ${desired.metadata?.name} is being deleted (by an uninstall?): wait until it is gone, then run kubetun install again`);
    }
    if (!isManaged(existing)) {
      if (desired.kind === 'Namespace') return 'kept';
      throw new InstallError(
        `${name} exists but kubetun did not create it (it lacks the label ${MANAGED_BY_LABEL}=${MANAGED_BY}): delete it, or install into another --namespace`,
      );
    }
    if (covers(existing, desired)) return 'unchanged';
    await this.call(`update ${name}`, () => this.objects.replace(overlay(existing, desired)), desired);
    return 'updated';
  }

  /** Applies every object in order, reporting each as it goes. */
  async applyAll(objects: readonly KubernetesObject[], report: (object: KubernetesObject, action: ApplyAction) => void): Promise<ApplyAction[]> {
    const actions: ApplyAction[] = [];
    for (const object of objects) {
      const action = await this.apply(object);
      report(object, action);
      actions.push(action);
    }
    return actions;
  }

  /** Deletes one object if kubetun created it. */
  async remove(object: KubernetesObject): Promise<RemoveAction> {
    const existing = await this.read(object);
    if (existing === null) return 'absent';
    if (!isManaged(existing)) return 'kept';
    try {
      await this.objects.delete(object, undefined, undefined, undefined, undefined, 'Background');
    } catch (error) {
      // Gone between the read and the delete: the same outcome.
      if (error instanceof ApiException && error.code === 404) return 'deleted';
      throw this.failure(error, `delete ${objectName(object)}`, object);
    }
    return 'deleted';
  }

  /**
   * The agent injector's CA and certificate: those of the Secret install made before while they still serve
   * (so the caBundle and the mounted certificate stay a pair), else new ones, with the reason the old were not kept.
   */
  async webhookTls(secret: V1Secret, dnsNames: readonly [string, ...string[]]): Promise<{ tls: WebhookTls; renewed?: string }> {
    const existing = (await this.read(secret)) as V1Secret | null;
    if (existing === null || !isManaged(existing)) return { tls: createWebhookTls(dnsNames) };
    const stored = webhookTlsFromSecretData(existing.data);
    const problem = webhookTlsProblem(stored, dnsNames);
    return problem === null ? { tls: stored as WebhookTls } : { tls: createWebhookTls(dnsNames), renewed: problem };
  }

  /**
   * Removes what install created: the webhook first (no new pod gets an agent), then `afterWebhook` (taking the
   * agents out), then the rest, the namespace last; waits (up to timeoutMs) until a deleted namespace is gone.
   */
  async removeAll(
    manifests: ManagerManifests,
    timeoutMs: number,
    report: (object: KubernetesObject, action: RemoveAction) => void,
    afterWebhook: () => Promise<void> = async () => undefined,
  ): Promise<RemoveAction[]> {
    const { webhookConfiguration, deployment, service, networkPolicy, webhookSecret, roleBinding, role, serviceAccount, clusterRoleBinding, clusterRole, namespace } = manifests;
    const actions: RemoveAction[] = [];
    const removeEach = async (objects: KubernetesObject[]): Promise<void> => {
      for (const object of objects) {
        const action = await this.remove(object);
        report(object, action);
        actions.push(action);
      }
    };
    await removeEach([webhookConfiguration]);
    await afterWebhook();
    // The NetworkPolicy goes after the Deployment: its pods stay unreachable for as long as they run.
    await removeEach([deployment, service, networkPolicy, webhookSecret, roleBinding, role, serviceAccount, clusterRoleBinding, clusterRole, namespace]);
    if (actions.at(-1) === 'deleted') await this.waitGone(namespace, timeoutMs);
    return actions;
  }

  private async waitGone(namespace: KubernetesObject, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: KubernetesObject | null = namespace;
    while (Date.now() < deadline) {
      last = await this.read(namespace);
      if (last === null) return;
      await sleep(POLL_MS);
    }
    const conditions = ((last as V1Namespace | null)?.status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => `${c.type}: ${c.message}`);
    throw new InstallError(
      `namespace ${namespace.metadata?.name} is still being deleted after ${timeoutMs / 1000} s` +
        `${conditions.length > 0 ? ` (${conditions.join('; ')})` : ''}: run kubetun uninstall again later, or check "kubectl get namespace ${namespace.metadata?.name} -o yaml"`,
    );
  }

  /** Resolves once the Deployment's current revision is available; throws what its pods wait for otherwise. */
  async waitAvailable(deployment: V1Deployment, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let current: V1Deployment | null = null;
    while (Date.now() < deadline) {
      current = (await this.read(deployment)) as V1Deployment | null;
      if (current !== null && rolledOut(current)) return;
      await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    }
    const namespace = deployment.metadata!.namespace!;
    const pods = await this.call(`list the pods of ${objectName(deployment)}`, () =>
      this.core.listNamespacedPod({ namespace, labelSelector: Object.entries(selectorLabels).map(([k, v]) => `${k}=${v}`).join(',') }),
    );
    throw new InstallError(
      `the traffic manager is not available after ${timeoutMs / 1000} s: ${whyNotAvailable(current, pods.items, namespace)}. ` +
        'Its objects are installed: fix the cause and run kubetun install again (or kubetun uninstall)',
    );
  }
}

/** kubectl rollout status's test: the newest revision's replicas are all updated and available, no old ones left. */
export function rolledOut(deployment: V1Deployment): boolean {
  const { metadata, spec, status } = deployment;
  if (status === undefined || (status.observedGeneration ?? 0) < (metadata?.generation ?? 0)) return false;
  const wanted = spec?.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  return updated >= wanted && (status.replicas ?? 0) <= updated && (status.availableReplicas ?? 0) >= updated;
}

/** Why the manager is not up, for a person: each pod's state, or the Deployment's failure when no pod exists. */
export function whyNotAvailable(deployment: V1Deployment | null, pods: readonly V1Pod[], namespace: string): string {
  if (deployment === null) return `deployment ${namespace}/${MANAGER_NAME} has disappeared`;
  const live = pods.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
  if (live.length > 0) {
    const first = live[0]!.metadata?.name;
    return `${live.map((pod) => `pod ${pod.metadata?.name ?? '?'}: ${notReadyReason(pod)}`).join('; ')}; see "kubectl -n ${namespace} describe pod ${first}"`;
  }
  const conditions = deployment.status?.conditions ?? [];
  const failure = conditions.find((c) => c.type === 'ReplicaFailure' && c.status === 'True') ?? conditions.find((c) => c.status === 'False');
  return `deployment ${namespace}/${MANAGER_NAME} has no pod${failure?.message ? `: ${failure.message}` : ''}; see "kubectl -n ${namespace} describe deployment ${MANAGER_NAME}"`;
}
