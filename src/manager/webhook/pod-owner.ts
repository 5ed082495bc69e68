// The workload a pod being created belongs to, from what the API server has when it calls the webhook: the pod's
// controller ownerReference (the ReplicaSet or StatefulSet controller sets it before creating the pod) and, for a
// ReplicaSet, the pod-template-hash label, whose suffix on the ReplicaSet's name marks a Deployment's ReplicaSet.
// This needs nothing from the manager at admission time, so pods start when the manager is down.

import type { V1Pod } from '@kubernetes/client-node';

export interface PodWorkload {
  name: string;
  kind: 'Deployment' | 'StatefulSet' | 'ReplicaSet';
}

const TEMPLATE_HASH_LABEL = 'pod-template-hash';

/** The pod's workload, or why it has none the agent can serve (a bare pod, a Job's, a DaemonSet's). */
export function podWorkload(pod: V1Pod): PodWorkload | string {
  const owner = (pod.metadata?.ownerReferences ?? []).find((reference) => reference.controller === true);
  if (owner === undefined) return 'the pod has no controller (a bare pod): only Deployments, StatefulSets and ReplicaSets get the agent';
  if (owner.kind === 'StatefulSet' && owner.apiVersion === 'apps/v1') return { name: owner.name, kind: 'StatefulSet' };
  if (owner.kind !== 'ReplicaSet' || owner.apiVersion !== 'apps/v1') return `the pod's controller is ${owner.kind} ${owner.name}: only Deployments, StatefulSets and ReplicaSets get the agent`;
  const hash = pod.metadata?.labels?.[TEMPLATE_HASH_LABEL];
  if (hash !== undefined && hash !== '' && owner.name.endsWith(`-${hash}`) && owner.name.length > hash.length + 1) {
    return { name: owner.name.slice(0, -(hash.length + 1)), kind: 'Deployment' };
  }
  return { name: owner.name, kind: 'ReplicaSet' };
}
