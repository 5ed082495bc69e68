// The agent injection as a pure function: each patch is applied (strictly, as the API server would) and the
// resulting pod is checked, including the agent's config as the agent itself parses it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import {
  AGENT_CONFIG_ENV,
  AGENT_CONTAINER,
  AGENT_CONTAINER_ANNOTATION,
  AGENT_INIT_CONTAINER,
  AGENT_LABEL,
  AGENT_PORTS_ANNOTATION,
  INJECTED_ANNOTATION,
  REPLACE_ANNOTATION,
  parseAgentConfig,
  type AgentTargetPort,
} from '../../src/agent/agent-contract.js';
import { pointer } from '../../src/manager/webhook/json-patch.js';
import { mutatePod, type InjectionSettings } from '../../src/manager/webhook/pod-mutation.js';
import { applyPatch } from './webhook-patch-apply.js';

const SETTINGS: InjectionSettings = { agentImage: 'registry.test/traffic-manager:9.9.9', managerAddress: { host: 'traffic-manager.kubetun.svc', port: 8083 }, version: '9.9.9' };

function echoPod(ports: AgentTargetPort[] = [{ targetPort: 'http', protocol: 'TCP' }], annotations: Record<string, string> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'echo-5d8f7c9b7-',
      labels: { app: 'echo', 'pod-template-hash': '5d8f7c9b7', [AGENT_LABEL]: 'enabled' },
      annotations: { [AGENT_PORTS_ANNOTATION]: JSON.stringify(ports), [AGENT_CONTAINER_ANNOTATION]: 'echo', ...annotations },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'echo-5d8f7c9b7', uid: 'u1', controller: true }],
    },
    spec: {
      containers: [
        {
          name: 'echo',
          image: 'echo:1',
          ports: [
            { name: 'http', containerPort: 8080, protocol: 'TCP' },
            { name: 'metrics', containerPort: 9090 },
          ],
          readinessProbe: { httpGet: { path: '/ready', port: 'http' } },
          livenessProbe: { tcpSocket: { port: 'http' } },
          startupProbe: { httpGet: { path: '/', port: 'metrics' } },
          env: [
            { name: 'GREETING', value: 'hello' },
            { name: 'MESSAGE', value: '$(GREETING) from $(ECHO_SERVICE_HOST), $$(GREETING) stays' },
            { name: 'COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
            { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } },
            { name: 'MY_POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'MEMORY', valueFrom: { resourceFieldRef: { resource: 'limits.memory' } } },
          ],
          envFrom: [{ configMapRef: { name: 'echo-config' } }, { prefix: 'DB_', secretRef: { name: 'db' } }],
        },
        { name: 'sidecar', image: 'side:1', ports: [{ containerPort: 7000 }] },
      ],
    },
  };
}

function injected(pod: V1Pod, namespace = 'shop'): { result: V1Pod; agent: V1Container; app: V1Container | undefined } {
  const { patch, warning } = mutatePod(pod, namespace, SETTINGS);
  assert.equal(warning, undefined);
  const result = applyPatch(pod, patch);
  const agent = result.spec!.containers.find((c) => c.name === AGENT_CONTAINER);
  assert.ok(agent !== undefined, 'no agent container');
  return { result, agent, app: result.spec!.containers.find((c) => c.name === 'echo') };
}

const configOf = (container: V1Container) => parseAgentConfig(container.env?.find((e) => e.name === AGENT_CONFIG_ENV)?.value);

test('a named target port changes hands: the app port loses its name, probes naming it get the number, the agent gets the name', () => {
  const { result, agent, app } = injected(echoPod());
  assert.deepEqual(app!.ports, [{ containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090 }]);
  assert.deepEqual(app!.readinessProbe, { httpGet: { path: '/ready', port: 8080 } });
  assert.deepEqual(app!.livenessProbe, { tcpSocket: { port: 8080 } });
  assert.deepEqual(app!.startupProbe, { httpGet: { path: '/', port: 'metrics' } }, 'a probe of another port is left alone');
  assert.deepEqual(agent.ports, [{ name: 'http', containerPort: 9900, protocol: 'TCP' }]);
  assert.equal(result.spec!.initContainers, undefined, 'a named takeover needs no init container');
  assert.deepEqual(configOf(agent), {
    workload: 'echo',
    kind: 'Deployment',
    namespace: 'shop',
    container: 'echo',
    replaced: false,
    manager: { host: 'traffic-manager.kubetun.svc', port: 8083 },
    ports: [{ agentPort: 9900, containerPort: 8080, name: 'http', protocol: 'TCP', takeover: 'named-port' }],
  });
  assert.equal(agent.image, SETTINGS.agentImage);
  assert.deepEqual(agent.args, ['traffic-agent']);
  assert.deepEqual(agent.securityContext, { runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  assert.ok(agent.resources?.limits?.memory !== undefined);
  assert.equal(result.metadata!.annotations![INJECTED_ANNOTATION], '9.9.9');
  assert.deepEqual(result.spec!.containers.map((c) => c.name), ['echo', 'sidecar', AGENT_CONTAINER]);
});

test('the annotation key is escaped in the patch path (RFC 6901)', () => {
  const { patch } = mutatePod(echoPod(), 'shop', SETTINGS);
  assert.ok(patch.some((op) => op.path === '/metadata/annotations/kubetun.io~1injected'));
  assert.equal(pointer('a~b', 'c/d', 0), '/a~0b/c~1d/0');
});

test('a numeric target port: an init container with NET_ADMIN only redirects it, placed before the pod\'s own', () => {
  const pod = echoPod([{ targetPort: 8080, protocol: 'TCP' }, { targetPort: 'metrics', protocol: 'TCP' }, { targetPort: 5353, protocol: 'UDP' }]);
  pod.spec!.initContainers = [{ name: 'migrate', image: 'migrate:1' }];
  const { result, agent, app } = injected(pod);
  const [init, own] = result.spec!.initContainers!;
  assert.equal(own?.name, 'migrate');
  assert.equal(init?.name, AGENT_INIT_CONTAINER);
  assert.equal(init.image, SETTINGS.agentImage);
  assert.deepEqual(init.args, ['agent-init']);
  assert.deepEqual(init.securityContext, { runAsUser: 0, runAsNonRoot: false, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] } });
  assert.deepEqual(configOf(init), configOf(agent));
  assert.deepEqual(configOf(agent).ports, [
    { agentPort: 9900, containerPort: 8080, name: '', protocol: 'TCP', takeover: 'init-container' },
    { agentPort: 9901, containerPort: 9090, name: 'metrics', protocol: 'TCP', takeover: 'named-port' },
    { agentPort: 9902, containerPort: 5353, name: '', protocol: 'UDP', takeover: 'init-container' },
  ]);
  assert.deepEqual(agent.ports, [
    { containerPort: 9900, protocol: 'TCP' },
    { name: 'metrics', containerPort: 9901, protocol: 'TCP' },
    { containerPort: 9902, protocol: 'UDP' },
  ]);
  assert.deepEqual(app!.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { containerPort: 9090 }], 'only the named target loses its name');
  assert.deepEqual(app!.readinessProbe, { httpGet: { path: '/ready', port: 'http' } });
  assert.deepEqual(app!.startupProbe, { httpGet: { path: '/', port: 9090 } });
});

test('a pod without init containers gets the list; the same target twice (two Services) is taken once', () => {
  const { result, agent } = injected(echoPod([{ targetPort: 8080, protocol: 'TCP' }, { targetPort: 8080, protocol: 'TCP' }]));
  assert.deepEqual(result.spec!.initContainers!.map((c) => c.name), [AGENT_INIT_CONTAINER]);
  assert.equal(configOf(agent).ports.length, 1);
});

test('replace: the app container is left out, the agent declares the ports with their names, resource refs are dropped', () => {
  const { result, agent, app } = injected(echoPod([{ targetPort: 'http', protocol: 'TCP' }, { targetPort: 'metrics', protocol: 'TCP' }], { [REPLACE_ANNOTATION]: 'alice' }));
  assert.equal(app, undefined);
  assert.deepEqual(result.spec!.containers.map((c) => c.name), ['sidecar', AGENT_CONTAINER]);
  assert.equal(configOf(agent).replaced, true);
  assert.equal(configOf(agent).container, 'echo');
  assert.deepEqual(agent.ports, [{ name: 'http', containerPort: 9900, protocol: 'TCP' }, { name: 'metrics', containerPort: 9901, protocol: 'TCP' }]);
  assert.equal(agent.env!.find((e) => e.name === 'KTAPP_MEMORY'), undefined, 'a resourceFieldRef to a container that is gone would fail validation');
  assert.ok(agent.env!.some((e) => e.name === 'KTAPP_COLOR'));
});

test('the app\'s env is copied with the prefix: own $(VAR) references follow, others and $$ stay; refs are kept; envFrom gets the prefix', () => {
  const { agent } = injected(echoPod());
  const env = agent.env!;
  assert.deepEqual(env.slice(1, 4).map((e) => e.name), ['POD_NAME', 'POD_NAMESPACE', 'POD_IP']);
  assert.deepEqual(env.find((e) => e.name === 'POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
  assert.deepEqual(env.slice(4), [
    { name: 'KTAPP_GREETING', value: 'hello' },
    { name: 'KTAPP_MESSAGE', value: '$(KTAPP_GREETING) from $(ECHO_SERVICE_HOST), $$(GREETING) stays' },
    { name: 'KTAPP_COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
    { name: 'KTAPP_TOKEN', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } },
    { name: 'KTAPP_MY_POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'KTAPP_MEMORY', valueFrom: { resourceFieldRef: { resource: 'limits.memory', containerName: 'echo' } } },
  ]);
  assert.deepEqual(agent.envFrom, [
    { configMapRef: { name: 'echo-config' }, prefix: 'KTAPP_' },
    { secretRef: { name: 'db' }, prefix: 'KTAPP_DB_' },
  ]);
});

test('workloads: a StatefulSet\'s pod, a bare ReplicaSet\'s; a single container needs no container annotation', () => {
  const set = echoPod();
  set.metadata!.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'u2', controller: true }];
  assert.deepEqual([configOf(injected(set).agent).workload, configOf(injected(set).agent).kind], ['db', 'StatefulSet']);
  const bare = echoPod();
  bare.metadata!.ownerReferences![0]!.name = 'worker';
  assert.equal(configOf(injected(bare).agent).kind, 'ReplicaSet');
  const single = echoPod();
  single.spec!.containers = [single.spec!.containers[0]!];
  delete single.metadata!.annotations![AGENT_CONTAINER_ANNOTATION];
  assert.equal(configOf(injected(single).agent).container, 'echo');
});

test('pods without the label, and pods that have the agent already, are left alone without a warning', () => {
  const plain = echoPod();
  delete plain.metadata!.labels![AGENT_LABEL];
  assert.deepEqual(mutatePod(plain, 'shop', SETTINGS), { patch: [] });
  const disabled = echoPod();
  disabled.metadata!.labels![AGENT_LABEL] = 'disabled';
  assert.deepEqual(mutatePod(disabled, 'shop', SETTINGS), { patch: [] });
  const { result } = injected(echoPod());
  assert.deepEqual(mutatePod(result, 'shop', SETTINGS), { patch: [] }, 'a reinvocation must not add a second agent');
});

test('what the webhook cannot make sense of leaves the pod as it is, with a warning saying why', () => {
  const cases: [string, (pod: V1Pod) => void, RegExp][] = [
    ['no ports annotation', (p) => delete p.metadata!.annotations![AGENT_PORTS_ANNOTATION], /has no kubetun\.io\/agent-ports annotation/],
    ['ports not JSON', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[{'), /agent-ports is not JSON/],
    ['ports not an array', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '{"targetPort":80}'), /must be a JSON array/],
    ['empty ports', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[]'), /must be a JSON array/],
    ['bad protocol', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[{"targetPort":80,"protocol":"SCTP"}]'), /\[0\]\.protocol must be TCP or UDP/],
    ['bad port', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[{"targetPort":70000,"protocol":"TCP"}]'), /\[0\]\.targetPort must be a port number/],
    ['too many ports', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = JSON.stringify(Array.from({ length: 65 }, (_, i) => ({ targetPort: i + 1, protocol: 'TCP' })))), /at most 64/],
    ['unknown port name', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[{"targetPort":"grpc","protocol":"TCP"}]'), /container "echo" has no TCP port named "grpc"/],
    ['named port, other protocol', (p) => (p.metadata!.annotations![AGENT_PORTS_ANNOTATION] = '[{"targetPort":"http","protocol":"UDP"}]'), /no UDP port named "http"/],
    ['unknown container', (p) => (p.metadata!.annotations![AGENT_CONTAINER_ANNOTATION] = 'nginx'), /names "nginx", which is not a container/],
    ['two containers, none named', (p) => delete p.metadata!.annotations![AGENT_CONTAINER_ANNOTATION], /2 containers and no kubetun\.io\/agent-container/],
    ['a bare pod', (p) => delete p.metadata!.ownerReferences, /no controller \(a bare pod\)/],
    ['a Job\'s pod', (p) => (p.metadata!.ownerReferences = [{ apiVersion: 'batch/v1', kind: 'Job', name: 'j', uid: 'u', controller: true }]), /controller is Job j/],
    ['host network', (p) => (p.spec!.hostNetwork = true), /uses the host network/],
    ['agent port taken', (p) => p.spec!.containers[1]!.ports!.push({ containerPort: 9900 }), /port 9900, which the agent needs, is already a container port/],
  ];
  for (const [what, spoil, reason] of cases) {
    const pod = echoPod();
    spoil(pod);
    const mutation = mutatePod(pod, 'shop', SETTINGS);
    assert.deepEqual(mutation.patch, [], what);
    assert.match(mutation.warning ?? '', /^kubetun did not inject its agent: /, what);
    assert.match(mutation.warning ?? '', reason, what);
  }
});
