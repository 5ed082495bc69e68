// The traffic agent with real sockets on loopback: a real app, real cluster clients, and a test double of the
// traffic manager (the Agent service and the AGENT_PROTOCOL streams; a real manager needs a cluster).

import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { constants as http2constants } from 'node:http2';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { startTrafficAgent, type TrafficAgent } from '../../src/agent/traffic-agent.js';
import { CapsuleDecoder, encodeDatagramCapsule } from '../../src/tunnel/capsule.js';
import { AGENT_HEADER, ERROR_MESSAGE_HEADER, MIRROR_HEADER, SOURCE_HEADER, agentPath } from '../../src/tunnel/protocol.js';
import { kubetunVersion } from '../../src/version.js';
import { AGENT_ID, ManagerDouble, intercept, type AgentStream } from './manager-double.js';
import { LogWatch, agentEnvironment, freePort, tcpApp, tcpExchange, udpApp, udpExchange } from './agent-harness.js';

const LINK = { backoff: { minMs: 20, maxMs: 100 }, heartbeat: { intervalMs: 100, timeoutMs: 1_000 } };

async function nextAgentStream(manager: ManagerDouble): Promise<AgentStream> {
  const [s] = (await once(manager, 'agentStream')) as [AgentStream];
  return s;
}

/** 'FIN' when the agent closed the connection, else the error code (ECONNRESET for an RST). */
function howItEnds(client: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    client.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    client.once('end', () => resolve('FIN'));
  });
}

describe('traffic agent (against a test double of the traffic manager)', { timeout: 30_000 }, () => {
  const manager = new ManagerDouble();
  const watch = new LogWatch();
  let app: Awaited<ReturnType<typeof tcpApp>>;
  let appUdp: Awaited<ReturnType<typeof udpApp>>;
  let agent: TrafficAgent;
  let tcpPort: AgentPortConfig;
  let udpPort: AgentPortConfig;

  before(async () => {
    await manager.start();
    app = await tcpApp();
    appUdp = await udpApp();
    tcpPort = { agentPort: await freePort('tcp'), containerPort: app.port, name: 'http', protocol: 'TCP', takeover: 'named-port' };
    udpPort = { agentPort: await freePort('udp'), containerPort: appUdp.port, name: '', protocol: 'UDP', takeover: 'init-container' };
    const arrived = watch.next('arrived at the traffic manager');
    agent = await startTrafficAgent(agentEnvironment(manager.port, [tcpPort, udpPort]), watch.log, { link: LINK });
    await arrived;
  });

  after(async () => {
    await agent.stop();
    await manager.stop();
    app.close();
    appUdp.close();
  });

  async function setIntercepts(...list: Parameters<typeof intercept>[0][]): Promise<void> {
    const changed = watch.next('intercepts changed');
    manager.setIntercepts(list.map(intercept));
    await changed;
  }

  test('arrives with the pod, its ports, the app environment and its version', () => {
    const info = manager.arrivals[0]!;
    assert.equal(info.pod, 'echo-7d9f-abcde');
    assert.equal(info.workload, 'echo');
    assert.equal(info.podIp, '127.0.0.1');
    assert.equal(info.version, kubetunVersion());
    assert.deepEqual(info.environment, { GREETING: 'hello' });
    assert.deepEqual(
      info.ports.map((p) => [p.agentPort, p.containerPort, p.name, p.protocol, p.takeover]),
      [[tcpPort.agentPort, app.port, 'http', 'TCP', 'named-port'], [udpPort.agentPort, appUdp.port, '', 'UDP', 'init-container']],
    );
  });

  test('without an intercept the app answers (TCP and UDP)', async () => {
    assert.equal(await tcpExchange(tcpPort.agentPort, 'hi'), 'app:hi');
    assert.equal(await udpExchange(udpPort.agentPort, 'hu'), 'app:hu');
  });

  test('a global intercept: the connection arrives on an agent stream and bytes flow both ways, FIN included', async () => {
    await setIntercepts({ id: 'icpt-global', mode: 'global', containerPort: app.port, protocol: 'TCP', client: 'alice' });
    const arriving = nextAgentStream(manager);
    const client = net.connect(tcpPort.agentPort, '127.0.0.1');
    await once(client, 'connect');
    const { stream, headers } = await arriving;
    assert.equal(headers[':path'], agentPath('icpt-global'));
    assert.equal(headers[AGENT_HEADER], AGENT_ID);
    assert.equal(headers[SOURCE_HEADER], `127.0.0.1:${client.localPort}`);
    assert.equal(headers[MIRROR_HEADER], undefined);
    stream.respond({ ':status': 200 });
    client.write('ping');
    const [toClient] = (await once(stream, 'data')) as [Buffer];
    assert.equal(toClient.toString(), 'ping');
    stream.write('pong');
    const [fromClient] = (await once(client, 'data')) as [Buffer];
    assert.equal(fromClient.toString(), 'pong');
    client.end();
    await once(stream, 'end');
    stream.end();
    await once(client, 'end');
    await setIntercepts();
  });

  test('a rejected agent stream (502) resets the cluster client\'s connection', async () => {
    await setIntercepts({ id: 'icpt-refused', mode: 'global', containerPort: app.port, protocol: 'TCP' });
    manager.once('agentStream', ({ stream }: AgentStream) => {
      stream.respond({ ':status': 502, [ERROR_MESSAGE_HEADER]: 'nothing listens on localhost:8080' }, { endStream: true });
    });
    assert.equal(await howItEnds(net.connect(tcpPort.agentPort, '127.0.0.1')), 'ECONNRESET');
    await setIntercepts();
  });

  test('an agent stream the manager resets after it was taken resets the cluster client\'s connection (no FIN)', async () => {
    await setIntercepts({ id: 'icpt-global', mode: 'global', containerPort: app.port, protocol: 'TCP' });
    manager.once('agentStream', ({ stream }: AgentStream) => {
      stream.respond({ ':status': 200 });
      stream.write('partial');
      stream.once('data', () => stream.close(http2constants.NGHTTP2_CANCEL));
    });
    const client = net.connect(tcpPort.agentPort, '127.0.0.1');
    await once(client, 'data');
    client.write('go');
    assert.equal(await howItEnds(client), 'ECONNRESET');
    await setIntercepts();
  });

  test('a global UDP intercept: datagrams travel as capsules on one agent stream per client, answers come back', async () => {
    await setIntercepts({ id: 'icpt-udp', mode: 'global', containerPort: appUdp.port, protocol: 'UDP' });
    manager.once('agentStream', ({ stream }: AgentStream) => {
      stream.respond({ ':status': 200, 'capsule-protocol': '?1' });
      const decoder = new CapsuleDecoder((payload) => stream.write(encodeDatagramCapsule(Buffer.from(`client:${payload.toString()}`))));
      stream.on('data', (chunk: Buffer) => decoder.push(chunk));
    });
    const client = dgram.createSocket('udp4');
    try {
      client.send('one', udpPort.agentPort, '127.0.0.1');
      const [first] = (await once(client, 'message')) as [Buffer];
      assert.equal(first.toString(), 'client:one');
      // The same flow (no second agent stream: the handler above answered once).
      client.send('two', udpPort.agentPort, '127.0.0.1');
      const [second] = (await once(client, 'message')) as [Buffer];
      assert.equal(second.toString(), 'client:two');
    } finally {
      client.close();
    }
    await setIntercepts();
    assert.equal(await udpExchange(udpPort.agentPort, 'back'), 'app:back');
  });

  test('the manager gone: the app answers again; the agent arrives again when it is back and re-applies', async () => {
    await setIntercepts({ id: 'icpt-global', mode: 'global', containerPort: app.port, protocol: 'TCP' });
    const since = watch.messages.length;
    const port = manager.port;
    await manager.stop();
    await watch.next('intercepts dropped until the traffic manager is back', since);
    assert.equal(await tcpExchange(tcpPort.agentPort, 'alone'), 'app:alone');

    const arrived = watch.next('arrived at the traffic manager');
    const applied = watch.next('intercepts changed');
    await manager.start(port);
    await arrived;
    await applied;
    assert.equal(manager.arrivals.length, 2);
    manager.once('agentStream', ({ stream }: AgentStream) => {
      stream.respond({ ':status': 200 });
      stream.write('from the client');
    });
    assert.equal(await tcpExchange(tcpPort.agentPort, 'x'), 'from the client');
    await setIntercepts();
  });
});

describe('traffic agent of a replaced container (against a test double of the traffic manager)', { timeout: 30_000 }, () => {
  test('without an intercept connections are reset (there is no app)', async () => {
    const manager = new ManagerDouble();
    await manager.start();
    const watch = new LogWatch();
    const port: AgentPortConfig = { agentPort: await freePort('tcp'), containerPort: await freePort('tcp'), name: '', protocol: 'TCP', takeover: 'init-container' };
    const arrived = watch.next('arrived at the traffic manager');
    const agent = await startTrafficAgent(agentEnvironment(manager.port, [port], true), watch.log, { link: LINK });
    try {
      await arrived;
      assert.equal(await howItEnds(net.connect(port.agentPort, '127.0.0.1')), 'ECONNRESET');
    } finally {
      await agent.stop();
      await manager.stop();
    }
  });
});


