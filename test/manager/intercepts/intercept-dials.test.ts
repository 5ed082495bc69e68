// Intercepted connections end to end over real HTTP/2 on loopback: a test agent arrives on the agent listener and
// opens AGENT_PROTOCOL streams, a test client watches its dials and answers with INTERCEPT_PROTOCOL streams; the
// manager splices them. The Kubernetes API is an in-memory test double (no API server runs here); the agent
// verifier is the real one over it.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { constants as http2constants, type ClientHttp2Stream } from 'node:http2';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { Agent, Manager, type AgentDirective, type InterceptDial, type InterceptInfo } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { startTrafficManager, type TrafficManager, type TrafficManagerConfig } from '../../../src/manager/traffic-manager.js';
import type { Pod } from '../../../src/manager/intercepts/workload-api.js';
import {
  AGENT_HEADER,
  AGENT_PROTOCOL,
  ERROR_HEADER,
  ERROR_MESSAGE_HEADER,
  INTERCEPT_PROTOCOL,
  SESSION_HEADER,
  SOURCE_HEADER,
  agentPath,
  interceptPath,
} from '../../../src/tunnel/protocol.js';
import { testManagerConfig } from '../../tunnel/tunnel-fixture.js';
import { connectPeer, echoAgentInfo, echoApi, echoPod, responseOf, type H2Peer } from './intercept-fixture.js';

const CLAIM_TIMEOUT_MS = 1_000;

interface Scene {
  manager: TrafficManager;
  client: H2Peer;
  agent: H2Peer;
  control: Client<typeof Manager>;
  sessionId: string;
  intercept: InterceptInfo;
  close(): Promise<void>;
}

/** A manager with an agent listener, echo-1 at 127.0.0.1 (and `pods`), a client session with a global intercept of echo. */
async function startScene(config: Partial<TrafficManagerConfig>, pods: Pod[] = []): Promise<Scene> {
  const api = echoApi();
  api.pods.push(echoPod('echo-1', '127.0.0.1'), ...pods);
  const manager = await startTrafficManager(testManagerConfig({ workloadApi: api, agentListen: { host: '127.0.0.1', port: 0 }, ...config }));
  const client = await connectPeer(manager.url);
  const agent = await connectPeer(manager.agentUrl!);
  const control = client.client(Manager);
  const { id: sessionId } = await control.arriveAsClient({ name: 'alice@laptop', namespace: 'default', hostname: 'laptop', version: 't' });
  const intercept = await control.createIntercept({ sessionId, spec: { workload: 'echo', namespace: 'default', mode: 'global' } });
  return {
    manager,
    client,
    agent,
    control,
    sessionId,
    intercept,
    close: async () => {
      client.close();
      agent.close();
      await manager.close();
    },
  };
}

function agentStream(peer: H2Peer, agentId: string, interceptId: string): ClientHttp2Stream {
  return peer.session.request({
    ':method': 'CONNECT',
    ':protocol': AGENT_PROTOCOL,
    ':scheme': 'http',
    ':authority': 'manager',
    ':path': agentPath(interceptId),
    [AGENT_HEADER]: agentId,
    [SOURCE_HEADER]: '10.244.0.9:41000',
  });
}

function answer(peer: H2Peer, sessionId: string, dialId: string, failure?: [string, string]): ClientHttp2Stream {
  return peer.session.request(
    {
      ':method': 'CONNECT',
      ':protocol': INTERCEPT_PROTOCOL,
      ':scheme': 'http',
      ':authority': 'manager',
      ':path': interceptPath(dialId),
      [SESSION_HEADER]: sessionId,
      ...(failure ? { [ERROR_HEADER]: failure[0], [ERROR_MESSAGE_HEADER]: failure[1] } : {}),
    },
    failure ? { endStream: true } : {},
  );
}

async function readAll(stream: ClientHttp2Stream): Promise<string> {
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  await once(stream, 'end');
  return text;
}

test('an agent stream is announced to the client, answered and spliced; failures reach the agent as 502/504', { timeout: 30_000 }, async () => {
  // echo-2 is on its way out (it takes no connections, so the intercept is active without it): only its address is used.
  const scene = await startScene({ dialClaimTimeoutMs: CLAIM_TIMEOUT_MS }, [{ ...echoPod('echo-2', '10.244.1.2'), terminating: true }]);
  const { client, agent, control, sessionId, intercept } = scene;
  const stop = new AbortController();
  try {
    assert.equal(intercept.state, 'waiting');

    // Another pod's claim is refused: the caller's address is not echo-2's.
    const impostor = agent.client(Agent).arriveAsAgent(echoAgentInfo('echo-2'))[Symbol.asyncIterator]();
    await assert.rejects(impostor.next(), (error: ConnectError) => error.code === Code.PermissionDenied && /127\.0\.0\.1 is not an address of the pod default\/echo-2/.test(error.message));

    const directives: AsyncIterator<AgentDirective> = agent.client(Agent).arriveAsAgent(echoAgentInfo('echo-1'), { signal: stop.signal })[Symbol.asyncIterator]();
    const { agentId } = (await directives.next()).value as AgentDirective;
    assert.match(agentId, /^[A-Za-z0-9_-]+$/);
    const told = (await directives.next()).value as AgentDirective;
    assert.deepEqual(told.intercepts.map((i) => [i.id, i.mode, i.containerPort, i.client]), [[intercept.id, 'global', 8080, 'alice@laptop']]);
    const active = await control.getIntercept({ sessionId, id: intercept.id });
    assert.equal(active.state, 'active');
    assert.deepEqual(active.environment, { GREETING: 'hi' });

    const dials: AsyncIterator<InterceptDial> = control.watchDials({ id: sessionId }, { signal: stop.signal })[Symbol.asyncIterator]();

    // 1. Answered: bytes both ways, each direction ended on its own.
    const fromAgent = agentStream(agent, agentId, intercept.id);
    const dial = (await dials.next()).value as InterceptDial;
    assert.deepEqual([dial.interceptId, dial.pod, dial.containerPort, dial.protocol, dial.source, dial.mirror], [intercept.id, 'echo-1', 8080, 'TCP', '10.244.0.9:41000', false]);
    // Another session cannot take it.
    const { id: otherSession } = await control.arriveAsClient({ name: 'eve@laptop', namespace: 'default', hostname: 'laptop', version: 't' });
    assert.equal((await responseOf(answer(client, otherSession, dial.id)))[':status'], 504);
    const fromClient = answer(client, sessionId, dial.id);
    const responses = await Promise.all([responseOf(fromAgent), responseOf(fromClient)]);
    assert.deepEqual(responses.map((r) => r[':status']), [200, 200]);
    const clientReads = readAll(fromClient);
    const agentReads = readAll(fromAgent);
    fromAgent.end('GET / HTTP/1.1\r\n\r\n');
    assert.equal(await clientReads, 'GET / HTTP/1.1\r\n\r\n');
    fromClient.end('HTTP/1.1 200 OK\r\n\r\n');
    assert.equal(await agentReads, 'HTTP/1.1 200 OK\r\n\r\n');
    // The same dial cannot be claimed twice.
    assert.equal((await responseOf(answer(client, sessionId, dial.id)))[':status'], 504);

    // 2. The client's local dial failed: the agent gets 502 and the client's sentence.
    const refused = agentStream(agent, agentId, intercept.id);
    const dial2 = (await dials.next()).value as InterceptDial;
    answer(client, sessionId, dial2.id, ['refused', 'nothing listens on localhost:8080']);
    const refusal = await responseOf(refused);
    assert.equal(refusal[':status'], 502);
    assert.equal(refusal[ERROR_HEADER], 'refused');
    assert.match(String(refusal[ERROR_MESSAGE_HEADER]), /nothing listens on localhost:8080/);

    // 3. Nobody answers: 504 timeout after the claim timeout.
    const unanswered = agentStream(agent, agentId, intercept.id);
    await dials.next();
    const timeout = await responseOf(unanswered);
    assert.equal(timeout[':status'], 504);
    assert.equal(timeout[ERROR_HEADER], 'timeout');

    // 4. A reset on the client's side resets the agent's stream.
    const cut = agentStream(agent, agentId, intercept.id);
    const dial4 = (await dials.next()).value as InterceptDial;
    const cutting = answer(client, sessionId, dial4.id);
    await Promise.all([responseOf(cut), responseOf(cutting)]);
    cutting.close(http2constants.NGHTTP2_CANCEL);
    await once(cut, 'close');
    assert.equal(cut.rstCode, http2constants.NGHTTP2_CANCEL);

    // 5. A stream naming another agent's id, or an intercept the agent was not told, is refused.
    assert.equal((await responseOf(agentStream(agent, 'not-an-agent', intercept.id)))[':status'], 403);
    assert.equal((await responseOf(agentStream(agent, agentId, 'other-intercept')))[':status'], 403);
    assert.equal((await control.getIntercept({ sessionId, id: intercept.id })).requests, 4n);

    // 6. The session departs: the agent is told at once that the intercept ended.
    await control.depart({ id: sessionId });
    const after = (await directives.next()).value as AgentDirective;
    assert.deepEqual(after.intercepts, []);
    assert.equal((await responseOf(agentStream(agent, agentId, intercept.id)))[':status'], 403);
  } finally {
    stop.abort();
    await scene.close();
  }
});

test('without a Kubernetes API the intercept RPCs refuse, and the agent listener is not started', async () => {
  const manager = await startTrafficManager(testManagerConfig());
  const client = await connectPeer(manager.url);
  try {
    const control = client.client(Manager);
    const { id: sessionId } = await control.arriveAsClient({ name: 'alice@laptop', namespace: 'default', hostname: 'laptop', version: 't' });
    await assert.rejects(control.createIntercept({ sessionId, spec: { workload: 'echo', namespace: 'default', mode: 'global' } }), (error: ConnectError) => error.code === Code.FailedPrecondition && /no Kubernetes API/.test(error.message));
    await assert.rejects(control.listWorkloads({ sessionId }), (error: ConnectError) => error.code === Code.FailedPrecondition);
  } finally {
    client.close();
    await manager.close();
  }
  await assert.rejects(startTrafficManager(testManagerConfig({ agentListen: { host: '127.0.0.1', port: 0 } })), /--agent-listen needs the Kubernetes API/);
});

test('caps: agents in all, and pending connections per agent (the one over answered 429 at once)', { timeout: 30_000 }, async () => {
  const scene = await startScene({ limits: { agents: 1, pendingDialsPerAgent: 1 } }, [echoPod('echo-3', '127.0.0.1')]);
  const { agent, control, sessionId, intercept } = scene;
  const stop = new AbortController();
  try {
    const directives = agent.client(Agent).arriveAsAgent(echoAgentInfo('echo-1'), { signal: stop.signal })[Symbol.asyncIterator]();
    const { agentId } = (await directives.next()).value as AgentDirective;
    await directives.next();
    const second = agent.client(Agent).arriveAsAgent(echoAgentInfo('echo-3'))[Symbol.asyncIterator]();
    await assert.rejects(second.next(), (error: ConnectError) => error.code === Code.ResourceExhausted && /limit of 1 agents/.test(error.message));

    const dials = control.watchDials({ id: sessionId }, { signal: stop.signal })[Symbol.asyncIterator]();
    const first = agentStream(agent, agentId, intercept.id);
    await dials.next();
    const over = await responseOf(agentStream(agent, agentId, intercept.id));
    assert.equal(over[':status'], 429);
    assert.match(String(over[ERROR_MESSAGE_HEADER]), /1 pending connections per agent/);
    first.close();
  } finally {
    stop.abort();
    await scene.close();
  }
});

test('each listener serves only its own API; an agent whose connection is lost is gone (the intercept waits again)', { timeout: 30_000 }, async () => {
  const scene = await startScene({});
  const { client, agent, control, sessionId, intercept } = scene;
  try {
    await assert.rejects(agent.client(Manager).version({}), (error: ConnectError) => error.code === Code.Unimplemented);
    const wrongPlace = client.client(Agent).arriveAsAgent(echoAgentInfo('echo-1'))[Symbol.asyncIterator]();
    await assert.rejects(wrongPlace.next(), (error: ConnectError) => error.code === Code.Unimplemented);

    const directives = agent.client(Agent).arriveAsAgent(echoAgentInfo('echo-1'))[Symbol.asyncIterator]();
    await directives.next();
    await directives.next();
    assert.equal((await control.getIntercept({ sessionId, id: intercept.id })).state, 'active');
    agent.session.destroy();
    while ((await control.getIntercept({ sessionId, id: intercept.id })).state !== 'waiting') await sleep(20);
    const listed = await control.listWorkloads({ sessionId, namespace: 'default' });
    assert.deepEqual(
      listed.workloads.map((w) => [w.name, w.agent, w.intercepts.map((i) => [i.client, i.spec?.mode, Object.keys(i.environment).length])]),
      [['echo', 'rolling-out', [['alice@laptop', 'global', 0]]]],
    );
  } finally {
    await scene.close();
  }
});
