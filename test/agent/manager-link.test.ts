// The agent's link to a test double of the traffic manager: started before the manager exists it serves the app
// and arrives once the manager listens; a path that goes silent (no FIN, no RST: a dead node) is noticed by the
// heartbeat, the intercepts are dropped and the app serves again; a slow one that still delivers is kept.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManagerLink } from '../../src/agent/manager-link.js';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { startTrafficAgent } from '../../src/agent/traffic-agent.js';
import { ManagerDouble, intercept } from './manager-double.js';
import { LogWatch, agentEnvironment, freePort, tcpApp, tcpExchange } from './agent-harness.js';
import { createLogger } from '../../src/log/logger.js';
import { unansweringPeer } from '../tunnel/unanswering-peer.js';

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

test('a link whose PING answers are late but whose bytes keep arriving is kept; one that falls silent is given up (hand-written HTTP/2 peer)', { timeout: 30_000 }, async (t) => {
  const peer = await unansweringPeer();
  t.after(() => peer.close());
  const failures: string[] = [];
  const log = createLogger('debug', (line) => {
    const { msg, error } = JSON.parse(line) as { msg: string; error?: string };
    if (msg.startsWith('the traffic manager is unreachable')) failures.push(error ?? '');
  });
  const link = new ManagerLink(agentEnvironment(peer.port, []), log, { backoff: { minMs: 5_000, maxMs: 5_000 }, heartbeat: { intervalMs: 50, timeoutMs: 300 } });
  link.start();
  t.after(() => link.stop());

  await sleep(1_000);
  assert.deepEqual(failures, [], 'no PING was answered for 1 s, yet bytes kept coming');

  peer.silence();
  const silentAt = performance.now();
  while (failures.length === 0 && performance.now() - silentAt < 2_000) await sleep(20);
  assert.match(failures[0] ?? 'kept', /heartbeat failed: The traffic manager did not answer a ping within 300 ms/);
  assert.ok(performance.now() - silentAt < 800, `given up ${Math.round(performance.now() - silentAt)} ms after the last byte`);
});
