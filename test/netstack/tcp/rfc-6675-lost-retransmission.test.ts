// One bulk flow through a bottleneck with the bench's impairment (1% loss of data, 1% loss and some reordering
// of ACKs): at that rate several segments are lost per window and a retransmission itself is lost now and
// then. Loss recovery must repair both without waiting for the retransmission timer, or throughput collapses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bulkTransferTime } from './transfer-driver.js';

const MIB = 1024 * 1024;
const BYTES = 8 * MIB;

function transferTime(dataLoss: number, ackLoss: number, seed: number): number {
  return bulkTransferTime({ bytes: BYTES, delayMs: 0.02, rateAtoB: 1_000_000, dataLoss, ackLoss, seed });
}

test('RFC 6675 §5 / RFC 8985 §6.2: under 1% data and ACK loss a lost retransmission is resent without waiting for the RTO', () => {
  const clean = transferTime(0, 0, 3);
  for (const seed of [3, 4, 5]) {
    const lossy = transferTime(0.01, 0.01, seed);
    // 1% loss bounds the congestion window (about 4× slower here); one RTO (200 ms at least) alone is 25×.
    assert.ok(lossy < 4 * clean + 10, `lossy ${lossy.toFixed(1)} ms vs clean ${clean.toFixed(1)} ms (seed ${seed})`);
  }
});
