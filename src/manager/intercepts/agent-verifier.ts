// Who may arrive as an agent: only the pod it claims to be. Another pod (or anything else that reaches the agent
// listener) could otherwise receive intercepted traffic, so the claim is checked against the API: the pod exists,
// runs the agent container, has the caller's address, and belongs to the workload it names.

import { AGENT_CONTAINER } from '../../agent/agent-contract.js';
import type { AgentInfo } from '../../gen/kubetun/manager/v1/manager_pb.js';
import type { WorkloadApi } from './workload-api.js';

export class AgentRefusedError extends Error {
  override readonly name = 'AgentRefusedError';
}

export interface AgentVerifier {
  /** Resolves when `info` is true of the caller at `remoteAddress`; rejects with AgentRefusedError naming what did not match. */
  verify(info: AgentInfo, remoteAddress: string): Promise<void>;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
export function plainAddress(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address.toLowerCase();
}

/** The workload owning a pod: its ReplicaSet's Deployment, its StatefulSet, or an ownerless ReplicaSet. */
async function owningWorkload(api: WorkloadApi, namespace: string, owner: { kind: string; name: string } | undefined): Promise<{ kind: string; name: string } | undefined> {
  if (owner === undefined) return undefined;
  if (owner.kind !== 'ReplicaSet') return owner;
  const replicaSet = await api.getWorkload({ kind: 'ReplicaSet', namespace, name: owner.name });
  if (replicaSet === undefined) return undefined;
  return replicaSet.owner?.kind === 'Deployment' ? replicaSet.owner : owner;
}

export function kubeAgentVerifier(api: WorkloadApi): AgentVerifier {
  return {
    async verify(info, remoteAddress) {
      const where = `${info.namespace}/${info.pod}`;
      const pod = await api.getPod(info.namespace, info.pod);
      if (pod === undefined) throw new AgentRefusedError(`no pod ${where}`);
      if (!pod.containers.includes(AGENT_CONTAINER)) throw new AgentRefusedError(`the pod ${where} does not run the ${AGENT_CONTAINER} container`);
      const caller = plainAddress(remoteAddress);
      if (!pod.podIps.map(plainAddress).includes(caller)) {
        throw new AgentRefusedError(`the caller's address ${caller} is not an address of the pod ${where} (${pod.podIps.join(', ') || 'none yet'})`);
      }
      const owner = await owningWorkload(api, info.namespace, pod.owner);
      if (owner === undefined || owner.kind !== info.kind || owner.name !== info.workload) {
        const actual = owner === undefined ? 'no workload' : `${owner.kind} ${owner.name}`;
        throw new AgentRefusedError(`the pod ${where} belongs to ${actual}, not to ${info.kind} ${info.workload}`);
      }
    },
  };
}
