// ListWorkloads: what a user can intercept in a namespace (or all), and why not when not — the Services selecting
// each workload and how each port would be taken, whether its pods run the agent, and who intercepts it now.

import type { MessageInitShape } from '@bufbuild/protobuf';
import type { WorkloadInfoSchema } from '../../gen/kubetun/manager/v1/manager_pb.js';
import { AGENT_LABEL, AGENT_LABEL_VALUE } from '../../agent/agent-contract.js';
import { workloadKey, type AgentRegistry } from './agent-registry.js';
import type { InterceptRegistry } from './intercept-registry.js';
import type { Service, Workload } from './workload-api.js';
import { workloadPorts } from './workload-ports.js';

type WorkloadInfoInit = MessageInitShape<typeof WorkloadInfoSchema>;

export function describeWorkloads(
  workloads: readonly Workload[],
  services: readonly Service[],
  agents: AgentRegistry,
  intercepts: InterceptRegistry,
): WorkloadInfoInit[] {
  return workloads
    .filter((w) => w.kind !== 'ReplicaSet' || w.owner === undefined)
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind))
    .map((w) => {
      const key = workloadKey(w.kind, w.namespace, w.name);
      const ports = workloadPorts(w, services);
      const takeable = ports.filter((p) => p.takeover !== undefined);
      let reason = '';
      if (ports.length === 0) reason = 'no Service selects it';
      else if (takeable.length === 0) reason = [...new Set(ports.map((p) => `${p.service}: ${p.reason}`))].join('; ');
      else if (w.replicas === 0) reason = 'replicas is 0: nothing answers until it is scaled up';
      const enabled = w.templateLabels[AGENT_LABEL] === AGENT_LABEL_VALUE;
      return {
        name: w.name,
        namespace: w.namespace,
        kind: w.kind,
        interceptable: takeable.length > 0,
        reason,
        ports: ports.map((p) => ({
          service: p.service,
          name: p.name,
          port: p.port,
          targetPort: String(p.targetPort),
          protocol: p.protocol,
          takeover: p.takeover ?? '',
        })),
        agent: !enabled ? 'none' : agents.ofWorkload(key).length > 0 ? 'ready' : 'rolling-out',
        intercepts: intercepts.ofWorkload(key).map((i) => intercepts.info(i, false)),
      };
    });
}
