// Makes a workload's pods run the agent: the pod template gets the agent label (the webhook's objectSelector), the
// target ports the agent takes and the app container's name; a replace adds the replace annotation. Changing the
// template rolls the pods out; a template that already says all this is left alone (no needless rollout).

import { Code, ConnectError } from '@connectrpc/connect';
import {
  AGENT_CONTAINER_ANNOTATION,
  AGENT_LABEL,
  AGENT_LABEL_VALUE,
  AGENT_PORTS_ANNOTATION,
  REPLACE_ANNOTATION,
  type AgentTargetPort,
} from '../../agent/agent-contract.js';
import { WorkloadApiError, type TemplatePatch, type Workload, type WorkloadApi, type WorkloadRef } from './workload-api.js';

const RESOURCE_NAME: Readonly<Record<WorkloadRef['kind'], string>> = { Deployment: 'deployments', StatefulSet: 'statefulsets', ReplicaSet: 'replicasets' };

/** The patch that makes the template run the agent in front of `container`; undefined when it already does. */
export function enablingPatch(workload: Workload, ports: readonly AgentTargetPort[], container: string, replace: boolean): TemplatePatch | undefined {
  const annotations: Record<string, string> = {};
  const portsJson = JSON.stringify(ports);
  if (workload.templateAnnotations[AGENT_PORTS_ANNOTATION] !== portsJson) annotations[AGENT_PORTS_ANNOTATION] = portsJson;
  if (workload.templateAnnotations[AGENT_CONTAINER_ANNOTATION] !== container) annotations[AGENT_CONTAINER_ANNOTATION] = container;
  if (replace && workload.templateAnnotations[REPLACE_ANNOTATION] !== container) annotations[REPLACE_ANNOTATION] = container;
  const labelled = workload.templateLabels[AGENT_LABEL] === AGENT_LABEL_VALUE;
  if (labelled && Object.keys(annotations).length === 0) return undefined;
  return { ...(labelled ? {} : { labels: { [AGENT_LABEL]: AGENT_LABEL_VALUE } }), annotations };
}

/** The patch that ends a replace (the app container comes back). */
export const unreplacePatch: TemplatePatch = { annotations: { [REPLACE_ANNOTATION]: null } };

/** Applies a template patch; a refusal becomes an error naming the fix (RBAC) or the API's trouble. */
export async function patchWorkload(api: WorkloadApi, ref: WorkloadRef, patch: TemplatePatch): Promise<void> {
  try {
    await api.patchTemplate(ref, patch);
  } catch (error) {
    if (!(error instanceof WorkloadApiError)) throw error;
    const what = `${ref.kind} ${ref.namespace}/${ref.name}`;
    if (error.statusCode === 403) {
      throw new ConnectError(
        `the traffic manager may not change ${what}: give its ServiceAccount the RBAC verb "patch" on ${RESOURCE_NAME[ref.kind]}.apps in namespace ${ref.namespace} (kubetun install sets it up).`,
        Code.PermissionDenied,
      );
    }
    if (error.statusCode === 404) throw new ConnectError(`${what} is gone.`, Code.NotFound);
    throw new ConnectError(`cannot change ${what}: ${error.message}`, Code.Unavailable);
  }
}
