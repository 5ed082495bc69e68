// The agent's UDP flows against a test double of the traffic manager: an idle flow closes its agent stream, and
// beyond the flow cap new clients are dropped (with one warning) while existing flows keep working.

import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { startTrafficAgent, type TrafficAgent } from '../../src/agent/traffic-agent.js';
import { ManagerDouble, intercept, type AgentStream } from './manager-double.js';
import { LogWatch, agentEnvironment, freePort, udpApp } from './agent-harness.js';

describe('agent UDP flows (against a test double of the traffic manager)', { timeout: 30_000 }, () => {
  const manager = new ManagerDouble();
  const watch = new LogWatch();
  let app: Awaited<ReturnType<typeof udpApp>>;
  let agent: TrafficAgent;
  let port: AgentPortConfig;

  before(async () => {
    await manager.start();
    app = await udpApp();
    port = { agentPort: await freePort('udp'), containerPort: app.port, name: '', protocol: 'UDP', takeover: 'init-container' };
    const arrived = watch.next('arrived at the traffic manager');
    agent = await startTrafficAgent(agentEnvironment(manager.port, [port]), watch.log, {
      link: { backoff: { minMs: 20, maxMs: 100 } },
      udp: { idleMs: 200, maxFlows: 2 },
    });
    await arrived;
  });

  after(async () => {
    await agent.stop();
    await manager.stop();
    app.close();
  });

  test('an idle intercepted flow closes its agent stream', async () => {
    const applied = watch.next('intercepts changed');
    manager.setIntercepts([intercept({ id: 'icpt-udp', mode: 'global', containerPort: app.port, protocol: 'UDP' })]);
    await applied;
    const arriving = once(manager, 'agentStream') as Promise<[AgentStream]>;
    const client = dgram.createSocket('udp4');
    try {
      client.send('once', port.agentPort, '127.0.0.1');
      const [{ stream }] = await arriving;
      stream.respond({ ':status': 200, 'capsule-protocol': '?1' });
      await once(stream, 'data');
      await once(stream, 'close');
    } finally {
      client.close();
    }
    const cleared = watch.next('intercepts changed');
    manager.setIntercepts([]);
    await cleared;
  });

  test('beyond the flow cap new clients are dropped with one warning; flows already held still work', async () => {
    const held = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
    try {
      for (const socket of held) {
        socket.send('hold', port.agentPort, '127.0.0.1');
        const [answer] = (await once(socket, 'message')) as [Buffer];
        assert.equal(answer.toString(), 'app:hold');
      }
      const warned = watch.next('too many UDP flows: new clients are dropped');
      const extra = dgram.createSocket('udp4');
      extra.send('one too many', port.agentPort, '127.0.0.1');
      await warned;
      extra.close();
      held[0]!.send('still', port.agentPort, '127.0.0.1');
      const [answer] = (await once(held[0]!, 'message')) as [Buffer];
      assert.equal(answer.toString(), 'app:still');
    } finally {
      for (const socket of held) socket.close();
    }
  });
});
