// The agent's link to a test double of the traffic manager: started before the manager exists it serves the app
// and arrives once the manager listens; a path that goes silent (no FIN, no RST: a dead node) is noticed by the
// heartbeat, the intercepts are dropped and the app serves again.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { startTrafficAgent } from '../../src/agent/traffic-agent.js';
import { ManagerDouble, intercept } from './manager-double.js';
import { LogWatch, agentEnvironment, freePort, tcpApp, tcpExchange } from './agent-harness.js';

/** A TCP relay to the manager that can go silent: it stops moving bytes but keeps the connections open. */
async function silenceableRelay(target: number): Promise<{ port: number; silence(): void; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, '127.0.0.1');
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    silence: () => {
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

test('an agent started before the manager serves the app, then arrives (test double of the traffic manager)', { timeout: 30_000 }, async () => {
  const app = await tcpApp();
  const managerPort = await freePort('tcp');
  const port: AgentPortConfig = { agentPort: await freePort('tcp'), containerPort: app.port, name: '', protocol: 'TCP', takeover: 'init-container' };
  const watch = new LogWatch();
  const unreachable = watch.next('the traffic manager is unreachable: the app serves every connection until it is back');
  const agent = await startTrafficAgent(agentEnvironment(managerPort, [port]), watch.log, { link: { backoff: { minMs: 20, maxMs: 100 } } });
  const manager = new ManagerDouble();
  try {
    await unreachable;
    assert.equal(await tcpExchange(port.agentPort, 'early'), 'app:early');
    const arrived = watch.next('arrived at the traffic manager');
    await manager.start(managerPort);
    await arrived;
    // Retries while it was down are logged once at warn; the rest at debug.
    assert.equal(watch.messages.filter((m) => m.startsWith('the traffic manager is unreachable')).length, 1);
  } finally {
    await agent.stop();
    await manager.stop();
    app.close();
  }
});

test('a silent path to the manager is noticed by the heartbeat: intercepts dropped, the app serves (test double of the traffic manager)', { timeout: 30_000 }, async () => {
  const app = await tcpApp();
  const manager = new ManagerDouble();
  await manager.start();
  const relay = await silenceableRelay(manager.port);
  const port: AgentPortConfig = { agentPort: await freePort('tcp'), containerPort: app.port, name: '', protocol: 'TCP', takeover: 'init-container' };
  const watch = new LogWatch();
  const applied = watch.next('intercepts changed');
  manager.setIntercepts([intercept({ id: 'icpt-global', mode: 'global', containerPort: app.port })]);
  const agent = await startTrafficAgent(agentEnvironment(relay.port, [port]), watch.log, {
    link: { backoff: { minMs: 20, maxMs: 100 }, heartbeat: { intervalMs: 50, timeoutMs: 300 } },
  });
  try {
    await applied;
    const dropped = watch.next('intercepts dropped until the traffic manager is back');
    relay.silence();
    await dropped;
    assert.equal(await tcpExchange(port.agentPort, 'alone'), 'app:alone');
  } finally {
    await agent.stop();
    relay.close();
    await manager.stop();
    app.close();
  }
});
