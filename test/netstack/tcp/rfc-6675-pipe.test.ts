import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SackRecovery } from '../../../src/netstack/tcp/tcp-recovery-sack.js';
import { MAX_SACK_RANGES } from '../../../src/netstack/tcp/tcp-sack-scoreboard.js';
import { SEND_HOLE } from '../../../src/netstack/tcp/tcp-send-plan.js';

test('RFC 6675 §4 pipe: never more than what is outstanding, also when the scoreboard cap forgot the highest ranges', () => {
  const seq = { sndUna: 1000, sndNxt: 1_001_000, sndMax: 1_001_000, inRecovery: false };
  const recovery = new SackRecovery(seq);
  // One byte SACKed every 1,000: more ranges than the scoreboard keeps, so the top ones are forgotten.
  const blocks: Array<[number, number]> = [];
  for (let k = 1; k <= MAX_SACK_RANGES + 200; k++) blocks.push([1000 + k * 1000, 1000 + k * 1000 + 1]);
  for (let i = 0; i < blocks.length; i += 4) recovery.onSackBlocks(blocks.slice(i, i + 4), seq.sndUna);
  seq.inRecovery = true;
  recovery.onRecoveryStart(1000);
  // Holes resent up to far above the highest range still known.
  recovery.onRetransmitted(SEND_HOLE, seq.sndUna, 900_000);
  const outstanding = seq.sndNxt - seq.sndUna;
  assert.ok(recovery.pipe() <= outstanding, `pipe ${recovery.pipe()} > ${outstanding} outstanding`);
});
