// One bulk flow through a bottleneck with the bench's impairment (1% loss of data, 1% loss and some reordering
// of ACKs): at that rate several segments are lost per window and a retransmission itself is lost now and
// then. Loss recovery must repair both without waiting for the retransmission timer, or throughput collapses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { seededRandom, SimLink } from './sim-link.js';
import { Endpoint, randomBytes } from './transfer-driver.js';

const MIB = 1024 * 1024;
const BYTES = 8 * MIB;

/** Simulated ms to move BYTES from A to B (B only acknowledges). */
function transferTime(dataLoss: number, ackLoss: number, seed: number): number {
  const link = new SimLink({ delayMs: 0.02, rateAtoB: 1_000_000, reorder: ackLoss > 0 ? 0.05 : 0, reorderDelayMs: 0.01, seed });
  const random = seededRandom(seed + 1);
  link.dropIf = (seg, fromA) => {
    if (seg.flags & 0x07) return false; // the handshake and the close are not what is measured
    return random() < (fromA ? (seg.payload.length > 0 ? dataLoss : 0) : ackLoss);
  };
  const config = tcpConfig({ timeWaitMs: 1 });
  link.a = TcpConnection.connect(40000, 80, 1000, 0, config);
  link.listener = { config, iss: 0x7000_0000, autoAccept: true };
  const a = new Endpoint(link.a, randomBytes(BYTES, seed));
  let b: Endpoint | null = null;
  link.onStep = () => {
    if (b === null && link.b !== null) b = new Endpoint(link.b, Buffer.alloc(0));
    a.pump();
    b?.pump();
  };
  let start = -1;
  const done = link.run(() => {
    if (start < 0 && link.a?.state === 'ESTABLISHED') start = link.now;
    return b !== null && b.receivedBytes === BYTES;
  }, 60_000);
  assert.ok(done, `${BYTES} bytes not delivered by t=${link.now}`);
  return link.now - start;
}

test('RFC 6675 §5 / RFC 8985 §6.2: under 1% data and ACK loss a lost retransmission is resent without waiting for the RTO', () => {
  const clean = transferTime(0, 0, 3);
  for (const seed of [3, 4, 5]) {
    const lossy = transferTime(0.01, 0.01, seed);
    // 1% loss bounds the congestion window (about 4× slower here); one RTO (200 ms at least) alone is 25×.
    assert.ok(lossy < 4 * clean + 10, `lossy ${lossy.toFixed(1)} ms vs clean ${clean.toFixed(1)} ms (seed ${seed})`);
  }
});
