// What the agent gives the HTTP router (src/agent/http, written on its own) for a port with personal intercepts
// and wiretaps: the port's routes read live, the app, and agent streams (a wiretap copy marked as a mirror). The
// router here is a test double that only records the hooks; the manager is a test double too.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import type { HttpRoutingHooks } from '../../src/agent/http/http-routing.js';
import { startTrafficAgent, type TrafficAgent } from '../../src/agent/traffic-agent.js';
import { MIRROR_HEADER, SOURCE_HEADER, agentPath } from '../../src/tunnel/protocol.js';
import { ManagerDouble, intercept, type AgentStream } from './manager-double.js';
import { LogWatch, agentEnvironment, freePort, tcpApp } from './agent-harness.js';

const manager = new ManagerDouble();
const watch = new LogWatch();
const routed: { socket: Socket; hooks: HttpRoutingHooks }[] = [];
let onRouted: () => void = () => undefined;
let app: Awaited<ReturnType<typeof tcpApp>>;
let agent: TrafficAgent;
let port: AgentPortConfig;

before(async () => {
  await manager.start();
  app = await tcpApp();
  port = { agentPort: await freePort('tcp'), containerPort: app.port, name: 'http', protocol: 'TCP', takeover: 'named-port' };
  const applied = watch.next('intercepts changed');
  manager.setIntercepts([
    intercept({ id: 'icpt-alice', mode: 'personal', containerPort: app.port, http: { headers: [{ name: 'x-user', value: 'alice' }] } }),
    intercept({ id: 'icpt-tap', mode: 'wiretap', containerPort: app.port }),
  ]);
  agent = await startTrafficAgent(agentEnvironment(manager.port, [port]), watch.log, {
    routeHttp: (socket, hooks) => {
      routed.push({ socket, hooks });
      onRouted();
    },
  });
  await applied;
});

after(async () => {
  for (const { socket } of routed) socket.destroy();
  await agent.stop();
  await manager.stop();
  app.close();
});

test('personal and wiretap intercepts: the router gets the port\'s routes (read live), the app, and agent streams (test doubles of the router and the manager)', { timeout: 30_000 }, async () => {
  const routedNow = new Promise<void>((resolve) => (onRouted = resolve));
  const client = net.connect(port.agentPort, '127.0.0.1');
  await once(client, 'connect');
  await routedNow;
  const { hooks } = routed[0]!;
  assert.deepEqual(hooks.personal().map((r) => r.id), ['icpt-alice']);
  assert.deepEqual(hooks.wiretaps(), ['icpt-tap']);

  const toApp = await hooks.openApp();
  toApp.write('direct');
  const [answer] = (await once(toApp, 'data')) as [Buffer];
  assert.equal(answer.toString(), 'app:direct');
  toApp.destroy();

  const arriving = once(manager, 'agentStream') as Promise<[AgentStream]>;
  const copy = hooks.openIntercept('icpt-tap', true);
  const [{ stream, headers }] = await arriving;
  assert.equal(headers[':path'], agentPath('icpt-tap'));
  assert.equal(headers[MIRROR_HEADER], '1');
  assert.equal(headers[SOURCE_HEADER], `127.0.0.1:${client.localPort}`);
  stream.respond({ ':status': 200 });
  (await copy).destroy();

  // A new directive changes what the same connection's hooks return.
  const changed = watch.next('intercepts changed');
  manager.setIntercepts([intercept({ id: 'icpt-bob', mode: 'personal', containerPort: app.port, http: { pathPrefix: '/bob' } })]);
  await changed;
  assert.deepEqual(hooks.personal().map((r) => r.id), ['icpt-bob']);
  assert.deepEqual(hooks.wiretaps(), []);
  client.destroy();
});
