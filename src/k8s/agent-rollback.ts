// `kubetun uninstall` takes the traffic agent out of the workloads the manager enabled: once the webhook is gone,
// removing the agent label and kubetun's annotations from a pod template rolls the workload's pods out without
// the agent (the manager's own patch, undone). A ReplicaSet a Deployment owns is left to its Deployment; a bare
// ReplicaSet only gets the label off its template (a ReplicaSet never replaces running pods).

import { AdmissionregistrationV1Api, ApiException, AppsV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1ObjectMeta, type V1PodTemplateSpec } from '@kubernetes/client-node';
import { AGENT_LABEL } from '../agent/agent-contract.js';
import { pointer, type JsonPatchOperation } from '../manager/webhook/json-patch.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, describeApiError, timedApiConfiguration } from './kube-client.js';
import { InstallError } from './installer.js';
import { webhookConfigurationName } from './agent-injector-manifests.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from './manager-manifests.js';

const KUBETUN_ANNOTATION_PREFIX = 'kubetun.io/';
const PAGE_SIZE = 500;

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'ReplicaSet';

export interface EnabledWorkload {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

interface Workload {
  metadata?: V1ObjectMeta;
  spec?: { template?: V1PodTemplateSpec };
}

interface Page<T> {
  items: T[];
  metadata?: { _continue?: string };
}

/** The JSON patch that takes the agent out of a pod template: its label and every kubetun.io/ annotation. */
export function agentRemovalPatch(template: V1PodTemplateSpec | undefined): JsonPatchOperation[] {
  const path = (...tokens: string[]): string => pointer('spec', 'template', 'metadata', ...tokens);
  const labels = template?.metadata?.labels ?? {};
  const annotations = Object.keys(template?.metadata?.annotations ?? {}).filter((key) => key.startsWith(KUBETUN_ANNOTATION_PREFIX));
  return [
    ...(AGENT_LABEL in labels ? [{ op: 'remove' as const, path: path('labels', AGENT_LABEL) }] : []),
    ...annotations.map((key) => ({ op: 'remove' as const, path: path('annotations', key) })),
  ];
}

const ownedByController = (workload: Workload): boolean => (workload.metadata?.ownerReferences ?? []).some((owner) => owner.controller === true);

export class AgentRollback {
  private readonly apps: AppsV1Api;
  private readonly admission: AdmissionregistrationV1Api;

  constructor(
    private readonly config: KubeConfig,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    const configuration = timedApiConfiguration(config, requestTimeoutMs);
    this.apps = new AppsV1Api(configuration);
    this.admission = new AdmissionregistrationV1Api(configuration);
  }

  /**
   * The namespaces of kubetun's other installs whose injector is still registered: their agents carry the same
   * label, so while one remains the agents stay.
   */
  async otherInjectors(namespace: string): Promise<string[]> {
    const prefix = webhookConfigurationName('');
    const list = await this.call('list mutatingwebhookconfigurations.admissionregistration.k8s.io', () =>
      this.admission.listMutatingWebhookConfiguration({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
    );
    return list.items
      .map((config) => config.metadata?.name ?? '')
      .filter((name) => name.startsWith(prefix) && name !== webhookConfigurationName(namespace))
      .map((name) => name.slice(prefix.length));
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new InstallError(describeApiError(error, what, this.config));
    }
  }

  private async listAll<T extends Workload>(what: string, list: (page: { limit: number; _continue?: string }) => Promise<Page<T>>): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined;
    do {
      const page = await this.call(`list ${what} in all namespaces`, () => list({ limit: PAGE_SIZE, ...(next ? { _continue: next } : {}) }));
      items.push(...page.items);
      next = page.metadata?._continue || undefined;
    } while (next !== undefined);
    return items;
  }

  /** Every workload whose pod template carries the agent label (a bare ReplicaSet's too). */
  async enabledWorkloads(): Promise<(EnabledWorkload & { workload: Workload })[]> {
    const lists: [WorkloadKind, Workload[]][] = [
      ['Deployment', await this.listAll('deployments.apps', (page) => this.apps.listDeploymentForAllNamespaces(page))],
      ['StatefulSet', await this.listAll('statefulsets.apps', (page) => this.apps.listStatefulSetForAllNamespaces(page))],
      ['ReplicaSet', (await this.listAll('replicasets.apps', (page) => this.apps.listReplicaSetForAllNamespaces(page))).filter((rs) => !ownedByController(rs))],
    ];
    return lists.flatMap(([kind, workloads]) =>
      workloads
        .filter((workload) => workload.spec?.template?.metadata?.labels?.[AGENT_LABEL] !== undefined)
        .map((workload) => ({ kind, namespace: workload.metadata!.namespace!, name: workload.metadata!.name!, workload })),
    );
  }

  /** Takes the agent out of every enabled workload, reporting each; one that is gone meanwhile is skipped. */
  async rollBack(report: (workload: EnabledWorkload) => void): Promise<EnabledWorkload[]> {
    const done: EnabledWorkload[] = [];
    for (const { workload, ...enabled } of await this.enabledWorkloads()) {
      const body = agentRemovalPatch(workload.spec?.template);
      const request = { name: enabled.name, namespace: enabled.namespace, body };
      const options = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
      const what = `remove the agent from ${enabled.kind} ${enabled.namespace}/${enabled.name}`;
      try {
        if (enabled.kind === 'Deployment') await this.apps.patchNamespacedDeployment(request, options);
        else if (enabled.kind === 'StatefulSet') await this.apps.patchNamespacedStatefulSet(request, options);
        else await this.apps.patchNamespacedReplicaSet(request, options);
      } catch (error) {
        if (error instanceof ApiException && error.code === 404) continue;
        throw new InstallError(describeApiError(error, what, this.config));
      }
      report(enabled);
      done.push(enabled);
    }
    return done;
  }
}
