// Run by kube-workload-api.test.ts inside the control plane's namespace (where the API server is reachable): the
// real WorkloadApi and agent verifier against the real API server, results as one JSON object on stdout.
//   workload-api-probe <kubeconfig> full <pod> <pod ip>   find, list, services, enable, verify
//   workload-api-probe <kubeconfig> patch                 only a replace's patch (a ServiceAccount without "patch")

import { create } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { AgentInfoSchema } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { loadKubeConfig } from '../../../src/k8s/kube-client.js';
import { kubeAgentVerifier } from '../../../src/manager/intercepts/agent-verifier.js';
import { kubeWorkloadApi, type WorkloadRef } from '../../../src/manager/intercepts/workload-api.js';
import { enablingPatch, patchWorkload } from '../../../src/manager/intercepts/workload-enabler.js';
import { agentTargetPorts, workloadPorts } from '../../../src/manager/intercepts/workload-ports.js';

const [kubeconfig, mode, pod, podIp] = process.argv.slice(2);
const api = kubeWorkloadApi(loadKubeConfig({ kubeconfig: kubeconfig! }));
const echo: WorkloadRef = { kind: 'Deployment', namespace: 'default', name: 'echo' };

async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (error) {
    return error instanceof ConnectError ? `${error.code}: ${error.rawMessage}` : (error as Error).message;
  }
}

async function enable(replace: boolean): Promise<string> {
  const workload = (await api.getWorkload(echo))!;
  const ports = workloadPorts(workload, await api.listServices('default'));
  const patch = enablingPatch(workload, agentTargetPorts(ports, 'echo'), 'echo', replace);
  return outcome(() => patchWorkload(api, echo, patch!));
}

const result: Record<string, unknown> = {};
if (mode === 'patch') {
  // A replace: the template already runs the agent, so only this changes it.
  result.patch = await enable(true);
} else {
  const workload = await api.getWorkload(echo);
  result.workload = workload;
  result.missing = (await api.getWorkload({ ...echo, name: 'nope' })) ?? null;
  result.ports = workloadPorts(workload!, await api.listServices(undefined));
  result.listed = (await api.listWorkloads(undefined)).map((w) => `${w.kind}/${w.namespace}/${w.name}${w.owner ? `<${w.owner.kind}` : ''}`).sort();
  result.patch = await enable(false);
  result.patched = (await api.getWorkload(echo))!;
  const info = (ip: string, workload = 'echo') => ({
    ip,
    info: create(AgentInfoSchema, { pod: pod!, namespace: 'default', workload, kind: 'Deployment', container: 'echo' }),
  });
  const verifier = kubeAgentVerifier(api);
  const verify = async ({ ip, info: agent }: ReturnType<typeof info>): Promise<string> => outcome(() => verifier.verify(agent, ip));
  result.verified = await verify(info(`::ffff:${podIp}`));
  result.wrongIp = await verify(info('10.244.9.9'));
  result.wrongWorkload = await verify(info(podIp!, 'other'));
}
process.stdout.write(JSON.stringify(result));
