import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { establishedPair, type SimLink } from './sim-link.js';

/** A's data segments sent at exactly the current time. */
function burst(link: SimLink): number {
  return link.log.filter((l) => l.fromA && l.t === link.now && l.seg.payload.length > 0).length;
}

for (const congestion of ['cubic', 'newreno'] as const) {
  test(`RFC 5681 §4.1 (${congestion}): after an idle period longer than the RTO, at most the restart window bursts out`, () => {
    const config = tcpConfig({ congestion, delayedAckMs: 0 });
    const link = establishedPair(config, config, { delayMs: 5 });
    const a = link.a as TcpConnection;
    const b = link.b as TcpConnection;
    link.onStep = () => {
      while (b.read() !== null);
    };
    a.write(Buffer.alloc(2 << 20, 1));
    assert.ok(link.run(() => a.sendBuffered === 0, 10_000), 'the first transfer finished');
    const active = link.now;
    a.write(Buffer.alloc(2 << 20, 2));
    link.step();
    assert.ok(burst(link) > 100, `a busy connection keeps its window (${burst(link)} segments at once)`);
    assert.ok(link.run(() => a.sendBuffered === 0, active + 10_000), 'the second transfer finished');

    link.runUntilTime(link.now + 5000); // idle, longer than any RTO here
    a.write(Buffer.alloc(2 << 20, 3));
    link.step();
    assert.ok(burst(link) <= 10, `after idling, ${burst(link)} segments at once (restart window: 10)`);
    assert.ok(link.run(() => a.sendBuffered === 0, link.now + 10_000), 'the third transfer finished');
  });
}
