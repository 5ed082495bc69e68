// Which Service port an intercept takes and how (by name, by init container), and what ListWorkloads says of each
// workload: pure functions of the API objects.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../../src/log/logger.js';
import { AGENT_LABEL } from '../../../src/agent/agent-contract.js';
import { AgentRegistry } from '../../../src/manager/intercepts/agent-registry.js';
import { InterceptRegistry } from '../../../src/manager/intercepts/intercept-registry.js';
import { describeWorkloads } from '../../../src/manager/intercepts/workload-listing.js';
import { agentTargetPorts, choosePort, PortChoiceError, workloadPorts } from '../../../src/manager/intercepts/workload-ports.js';
import type { Service, Workload } from '../../../src/manager/intercepts/workload-api.js';
import { DEFAULT_LIMITS } from '../../../src/manager/manager-limits.js';
import { echoApi } from './intercept-fixture.js';

const web: Workload = {
  kind: 'Deployment',
  namespace: 'shop',
  name: 'web',
  replicas: 2,
  templateLabels: { app: 'web', tier: 'front' },
  templateAnnotations: {},
  containers: [
    { name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
    { name: 'sidecar', ports: [{ name: 'metrics', containerPort: 9090, protocol: 'TCP' }] },
  ],
  owner: undefined,
};

const services: Service[] = [
  { namespace: 'shop', name: 'web', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'alt', port: 81, targetPort: 8081, protocol: 'TCP' }] },
  { namespace: 'shop', name: 'metrics', selector: { tier: 'front' }, ports: [{ name: '', port: 9090, targetPort: 'metrics', protocol: 'TCP' }] },
  { namespace: 'shop', name: 'broken', selector: { app: 'web' }, ports: [{ name: 'x', port: 1, targetPort: 'nope', protocol: 'TCP' }] },
  { namespace: 'shop', name: 'other', selector: { app: 'db' }, ports: [{ name: 'pg', port: 5432, targetPort: 5432, protocol: 'TCP' }] },
  { namespace: 'other', name: 'web', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  { namespace: 'shop', name: 'manual', selector: {}, ports: [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }] },
];

test('the Services selecting a workload resolve to containers: named ports by name, numbers by declaration or the first', () => {
  const ports = workloadPorts(web, services);
  assert.deepEqual(
    ports.map((p) => [p.service, p.port, p.takeover, p.containerPort, p.container, p.reason]),
    [
      ['broken', 1, undefined, 0, '', 'no container declares a port named "nope"'],
      ['metrics', 9090, 'named-port', 9090, 'sidecar', ''],
      ['web', 80, 'named-port', 8080, 'app', ''],
      ['web', 81, 'init-container', 8081, 'app', ''],
    ],
  );
  assert.deepEqual(agentTargetPorts(ports, 'app'), [{ targetPort: 8081, protocol: 'TCP' }, { targetPort: 'http', protocol: 'TCP' }]);
});

test('choosing the port: several Services or ports must be named; a wrong name lists the choices', () => {
  const ports = workloadPorts(web, services);
  const refusal = (service: string, port: string, kind: string, message: RegExp) =>
    assert.throws(() => choosePort(web, ports, service, port), (e: PortChoiceError) => e.kind === kind && message.test(e.message));
  refusal('', '', 'ambiguous', /several Services select shop\/web \(broken, metrics, web\)/);
  refusal('web', '', 'ambiguous', /several ports \(web:http\(80\), web:alt\(81\)\)/);
  refusal('web', '82', 'not-found', /no port "82"; its ports: web:http\(80\), web:alt\(81\)/);
  refusal('other', '', 'not-found', /does not select shop\/web/);
  refusal('broken', '', 'untakeable', /no container declares a port named "nope"/);
  assert.equal(choosePort(web, ports, 'web', 'http').containerPort, 8080);
  assert.equal(choosePort(web, ports, 'web', '81').takeover, 'init-container');
  assert.throws(() => choosePort(web, [], '', ''), /no Service selects shop\/web/);
});

test('ListWorkloads: ownerless workloads only, why one is not interceptable, the agent state and current intercepts', () => {
  const api = echoApi();
  const lonely: Workload = { ...web, name: 'lonely', namespace: 'default', templateLabels: { app: 'lonely' }, replicas: 0 };
  const idle: Workload = { ...web, name: 'idle', namespace: 'default', kind: 'StatefulSet', templateLabels: { app: 'idle', [AGENT_LABEL]: 'enabled' }, replicas: 0 };
  const idleService: Service = { namespace: 'default', name: 'idle', selector: { app: 'idle' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] };
  const agents = new AgentRegistry(DEFAULT_LIMITS);
  const intercepts = new InterceptRegistry({ api, agents, log: silentLogger, interceptsPerSession: 16 });
  const listed = describeWorkloads([...api.workloads, lonely, idle], [...api.services, idleService], agents, intercepts);
  assert.deepEqual(
    listed.map((w) => [w.kind, w.name, w.interceptable, w.reason, w.agent, w.ports?.map((p) => `${p.service}:${p.port}->${p.targetPort} ${p.takeover}`)]),
    [
      ['Deployment', 'echo', true, '', 'none', ['echo:80->http named-port']],
      ['StatefulSet', 'idle', true, 'replicas is 0: nothing answers until it is scaled up', 'rolling-out', ['idle:80->http named-port']],
      ['Deployment', 'lonely', false, 'no Service selects it', 'none', []],
    ],
  );
});
