// The intercept registry with an in-memory Kubernetes API (test double for the API server): conflicts, enabling
// the workload, what agents are told, and the end of intercepts with their session.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { AgentInfoSchema, InterceptSpecSchema, type InterceptSpec } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { silentLogger } from '../../../src/log/logger.js';
import { AGENT_CONTAINER_ANNOTATION, AGENT_LABEL, AGENT_PORTS_ANNOTATION, REPLACE_ANNOTATION } from '../../../src/agent/agent-contract.js';
import { AgentRegistry } from '../../../src/manager/intercepts/agent-registry.js';
import { InterceptRegistry } from '../../../src/manager/intercepts/intercept-registry.js';
import { DEFAULT_LIMITS } from '../../../src/manager/manager-limits.js';
import { SessionRegistry } from '../../../src/manager/session-registry.js';
import { echoAgentInfo, echoApi, type MemoryWorkloadApi } from './intercept-fixture.js';

function setup(api: MemoryWorkloadApi = echoApi(), interceptsPerSession = 16) {
  let now = 0;
  const sessions = new SessionRegistry(1_000, () => now);
  const agents = new AgentRegistry(DEFAULT_LIMITS);
  const intercepts = new InterceptRegistry({ api, agents, log: silentLogger, interceptsPerSession });
  const arrive = (name: string) => sessions.arrive({ name, namespace: 'default', hostname: 'laptop', version: 't' }, `id-${name}`);
  const agent = (pod: string, replaced = false) => agents.add(create(AgentInfoSchema, echoAgentInfo(pod, replaced)), undefined);
  return { api, sessions, agents, intercepts, arrive, agent, advance: (ms: number) => (now += ms) };
}

const spec = (mode: string, header?: [string, string], more: { workload?: string; kind?: string; servicePort?: string } = {}): InterceptSpec =>
  create(InterceptSpecSchema, {
    workload: 'echo',
    namespace: 'default',
    mode,
    ...(header ? { http: { headers: [{ name: header[0], value: header[1] }] } } : {}),
    ...more,
  });

async function refused(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

test('a second global intercept of the port is refused, naming who holds it; wiretaps coexist with it', async () => {
  const { intercepts, arrive } = setup();
  const alice = arrive('alice@a');
  const bob = arrive('bob@b');
  await intercepts.create(alice, spec('global'));
  await refused(intercepts.create(bob, spec('global')), Code.FailedPrecondition, /alice@a \(global, all requests\)/);
  await refused(intercepts.create(bob, spec('personal', ['x-dev', 'bob'])), Code.FailedPrecondition, /alice@a/);
  await intercepts.create(bob, spec('wiretap'));
  await intercepts.create(arrive('carol@c'), spec('wiretap'));
  assert.equal(intercepts.ofWorkload('Deployment/default/echo').length, 3);
});

test('personal intercepts: overlapping filters are refused naming the other filter, disjoint ones both hold', async () => {
  const { intercepts, arrive } = setup();
  await intercepts.create(arrive('alice@a'), spec('personal', ['x-dev', 'alice']));
  await intercepts.create(arrive('bob@b'), spec('personal', ['x-dev', 'bob']));
  await refused(intercepts.create(arrive('eve@e'), spec('personal', ['x-other', '1'])), Code.FailedPrecondition, /alice@a \(personal, x-dev=alice\).*overlap/);
  await refused(intercepts.create(arrive('dan@d'), spec('global')), Code.FailedPrecondition, /personal/);
});

test('the spec is checked: mode, filter only for personal, names, kind', async () => {
  const { intercepts, arrive } = setup();
  const s = arrive('alice@a');
  await refused(intercepts.create(s, spec('steal')), Code.InvalidArgument, /mode "steal"/);
  await refused(intercepts.create(s, spec('personal')), Code.InvalidArgument, /needs an HTTP filter/);
  await refused(intercepts.create(s, spec('global', ['x-dev', 'a'])), Code.InvalidArgument, /only with a personal/);
  await refused(intercepts.create(s, spec('personal', ['x dev', 'a'])), Code.InvalidArgument, /not a header name/);
  await refused(intercepts.create(s, spec('global', undefined, { workload: 'Echo' })), Code.InvalidArgument, /not a workload name/);
  await refused(intercepts.create(s, spec('global', undefined, { kind: 'Pod' })), Code.InvalidArgument, /kind "Pod"/);
  await refused(intercepts.create(s, spec('global', undefined, { workload: 'nope' })), Code.NotFound, /workload default\/nope not found: kubetun list -n default/);
  await refused(intercepts.create(s, spec('global', undefined, { servicePort: '81' })), Code.NotFound, /no port "81"; its ports: echo:http\(80\)/);
});

test('the first intercept enables the workload once; a replace adds its annotation and removes it when it ends', async () => {
  const { api, intercepts, arrive } = setup();
  const alice = arrive('alice@a');
  const info = await intercepts.create(alice, spec('personal', ['x-dev', 'alice']));
  assert.equal(info.state, 'waiting');
  assert.equal(api.patches.length, 1);
  const template = api.workloads[0]!;
  assert.equal(template.templateLabels[AGENT_LABEL], 'enabled');
  assert.equal(template.templateAnnotations[AGENT_PORTS_ANNOTATION], '[{"targetPort":"http","protocol":"TCP"}]');
  assert.equal(template.templateAnnotations[AGENT_CONTAINER_ANNOTATION], 'echo');
  await intercepts.create(arrive('bob@b'), spec('personal', ['x-dev', 'bob']));
  assert.equal(api.patches.length, 1, 'no second rollout');
  await refused(intercepts.create(arrive('carol@c'), spec('replace')), Code.FailedPrecondition, /alice@a|bob@b/);
  intercepts.remove(alice, info.id!);
  assert.throws(() => intercepts.remove(alice, info.id!), /no such intercept/);
  for (const i of intercepts.ofWorkload('Deployment/default/echo')) intercepts.remove(i.session, i.id);
  const dave = arrive('dave@d');
  const replace = await intercepts.create(dave, spec('replace'));
  assert.equal(template.templateAnnotations[REPLACE_ANNOTATION], 'echo');
  intercepts.remove(dave, replace.id!);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(template.templateAnnotations[REPLACE_ANNOTATION], undefined);
  assert.equal(template.templateLabels[AGENT_LABEL], 'enabled', 'the agent stays for a fast re-intercept');
});

test('a refused patch (403) names the RBAC the manager lacks, and leaves no intercept behind', async () => {
  const api = echoApi();
  api.patchStatus = 403;
  const { intercepts, arrive } = setup(api);
  const alice = arrive('alice@a');
  await refused(intercepts.create(alice, spec('global')), Code.PermissionDenied, /"patch" on deployments.apps in namespace default/);
  assert.equal(intercepts.ofSession(alice).length, 0);
});

test('agents are told the intercepts of their port; the state is active with the agent, which gives the owner its environment', async () => {
  const { intercepts, arrive, agent } = setup();
  const alice = arrive('alice@a');
  const created = await intercepts.create(alice, spec('personal', ['x-dev', 'alice']));
  const pod = agent('echo-1');
  pod.tell(intercepts.forAgent(pod));
  assert.equal(pod.wasTold(created.id!), true);
  const info = intercepts.info(intercepts.owned(alice, created.id!), true);
  assert.equal(info.state, 'active');
  assert.deepEqual(info.pods, ['echo-1']);
  assert.deepEqual(info.environment, { GREETING: 'hi' });
  assert.deepEqual(intercepts.info(intercepts.owned(alice, created.id!), false).environment, {});
  assert.throws(() => intercepts.owned(arrive('bob@b'), created.id!), /no such intercept/);
  intercepts.remove(alice, created.id!);
  assert.equal(pod.wasTold(created.id!), false, 'told at once that it ended');
});

test('a session that expires takes its intercepts with it and the agents are told', async () => {
  const { intercepts, arrive, agent, sessions, advance } = setup();
  const alice = arrive('alice@a');
  const created = await intercepts.create(alice, spec('global'));
  const pod = agent('echo-1');
  pod.tell(intercepts.forAgent(pod));
  assert.equal(pod.wasTold(created.id!), true);
  advance(2_000);
  sessions.sweep();
  assert.equal(intercepts.get(created.id!), undefined);
  assert.equal(pod.wasTold(created.id!), false);
  await intercepts.create(arrive('bob@b'), spec('global'));
});

test('intercepts per session are capped', async () => {
  const api = echoApi();
  const { intercepts, arrive } = setup(api, 2);
  const alice = arrive('alice@a');
  await intercepts.create(alice, spec('wiretap'));
  await intercepts.create(alice, spec('wiretap'));
  await refused(intercepts.create(alice, spec('wiretap')), Code.ResourceExhausted, /limit of 2 intercepts/);
});

test('a session that ends during the API calls gets no intercept and no patch', async () => {
  const api = echoApi();
  let release: () => void = () => undefined;
  const slow = new Promise<void>((resolve) => (release = resolve));
  const listServices = api.listServices.bind(api);
  api.listServices = async (namespace) => {
    await slow;
    return listServices(namespace);
  };
  const { intercepts, arrive, sessions } = setup(api);
  const alice = arrive('alice@a');
  const creating = intercepts.create(alice, spec('replace'));
  sessions.depart(alice.id, alice.owner);
  release();
  await refused(creating, Code.Aborted, /session ended/);
  assert.equal(api.patches.length, 0);
  assert.equal(intercepts.ofWorkload('Deployment/default/echo').length, 0);
});

test('an intercept is active only once every pod of the workload that takes connections runs the agent (a rollout under way waits)', async () => {
  const { api, intercepts, arrive, agent } = setup();
  const created = await intercepts.create(arrive('alice@a'), spec('global'));
  const intercept = intercepts.ofWorkload('Deployment/default/echo')[0]!;
  api.pods.push(
    { namespace: 'default', name: 'echo-old', podIps: ['10.244.0.9'], containers: ['echo'], owner: { kind: 'ReplicaSet', name: 'echo-1' }, terminating: false },
    { namespace: 'default', name: 'echo-a', podIps: ['10.244.0.10'], containers: ['echo'], owner: { kind: 'ReplicaSet', name: 'echo-2' }, terminating: false },
  );
  agent('echo-a');
  assert.equal(intercepts.info(intercept, true).state, 'active', "the agents' own view");
  const waiting = await intercepts.settledInfo(intercept);
  assert.equal(waiting.state, 'waiting');
  assert.match(waiting.message ?? '', /1 of 2 pods/);
  assert.deepEqual(waiting.environment, {});
  api.pods[0]!.terminating = true;
  assert.equal((await intercepts.settledInfo(intercept)).state, 'active');
  assert.equal(created.id, intercept.id);
});
