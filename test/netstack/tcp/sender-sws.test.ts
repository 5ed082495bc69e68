import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { establishedPair } from './sim-link.js';

for (const sendSegmentMax of [0, 1460]) {
  test(`RFC 9293 §3.8.6.2.1: full segments keep flowing while out-of-order data is held (SACK blocks on every segment, sendSegmentMax ${sendSegmentMax})`, () => {
    const config = tcpConfig({ sendSegmentMax });
    const link = establishedPair(config, config, { delayMs: 5 });
    const a = link.a as TcpConnection;
    const b = link.b as TcpConnection;
    // A sends without end; B reads everything.
    const chunk = Buffer.alloc(65536, 0x5a);
    let received = 0;
    link.onStep = () => {
      while (a.write(chunk) === chunk.length);
      for (let d = b.read(); d !== null; d = b.read()) received += d.length;
      while (a.read() !== null);
    };
    link.runUntilTime(link.now + 300);

    // B sends three segments and the first is lost, and so is every resend of it in the window looked at
    // (B's loss probe or timeout would repair it): A holds the other two out of order meanwhile.
    let lostSeq = -1;
    link.dropIf = (seg, fromA) => {
      if (fromA || seg.payload.length === 0) return false;
      if (lostSeq < 0) lostSeq = seg.seq;
      return seg.seq === lostSeq;
    };
    b.write(Buffer.alloc(3 * 1448, 1));
    const start = link.now;
    const receivedBefore = received;
    const logFrom = link.log.length;
    link.runUntilTime(start + 150);
    assert.ok(b.sendBuffered > 0, 'B has not resent the hole yet');
    let withSack = 0;
    for (const l of link.log.slice(logFrom)) if (l.fromA && l.seg.payload.length > 0 && l.seg.options.sack) withSack++;
    const moved = received - receivedBefore;
    assert.ok(withSack > 100, `A's data segments with SACK blocks: ${withSack}`);
    assert.ok(moved > 4 << 20, `A→B while A held out-of-order data: ${moved} bytes in 150 ms`);
  });
}
