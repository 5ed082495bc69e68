// Losses within 20 ms of a window cut belong to that congestion event (src/netstack/tcp/tcp-loss-epoch.ts):
// on the stack's sub-millisecond link, 1 % random loss no longer pins the window at a dozen segments, while a
// path of 20 ms or more still cuts once per loss episode as RFC 5681 has it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bulkTransferTime } from './transfer-driver.js';

const MIB = 1024 * 1024;

test('loss epoch: at 0.05 ms one way and 1 % loss of data and ACKs, one flow keeps at least half of its clean throughput', () => {
  const run = (loss: number, seed: number): number =>
    bulkTransferTime({ bytes: 16 * MIB, delayMs: 0.05, rateAtoB: 500_000, dataLoss: loss, ackLoss: loss, seed });
  const clean = run(0, 7);
  for (const seed of [7, 8, 9]) {
    const lossy = run(0.01, seed);
    assert.ok(lossy < 2 * clean, `lossy ${lossy.toFixed(1)} ms vs clean ${clean.toFixed(1)} ms (seed ${seed})`);
  }
});

test('loss epoch: at 20 ms one way every loss episode still cuts the window (RFC 5681 §3.2), so 1 % loss costs most of the throughput (over 8× the clean time; without cuts it is about 3×)', () => {
  const run = (loss: number): number => bulkTransferTime({ bytes: 4 * MIB, delayMs: 20, rateAtoB: 10_000, dataLoss: loss, ackLoss: 0, seed: 11 });
  const clean = run(0);
  const lossy = run(0.01);
  assert.ok(lossy > 8 * clean, `lossy ${lossy.toFixed(0)} ms vs clean ${clean.toFixed(0)} ms`);
});
