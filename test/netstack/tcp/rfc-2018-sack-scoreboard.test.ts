import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { MAX_SACK_RANGES, SackScoreboard } from '../../../src/netstack/tcp/tcp-sack-scoreboard.js';
import { seqAdd } from '../../../src/netstack/tcp/tcp-seq.js';
import { establishedPair } from './sim-link.js';

const SPAN = 400;

/** The reference: one flag per byte of a small sequence space, ranges read off as runs of flags. */
class Model {
  readonly held = new Uint8Array(SPAN);
  constructor(private readonly cap: number) {}

  runs(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < SPAN; i++) {
      if (this.held[i] === 0) continue;
      let j = i;
      while (j < SPAN && this.held[j] === 1) j++;
      out.push([i, j]);
      i = j;
    }
    return out;
  }

  add(s: number, e: number): void {
    this.held.fill(1, s, e);
    // Past the cap the highest range is forgotten.
    for (let r = this.runs(); r.length > this.cap; r = this.runs()) this.held.fill(0, ...r[r.length - 1]);
  }

  removeBelow(u: number): void {
    this.held.fill(0, 0, u);
  }
}

test('RFC 2018 §8 / RFC 6675 §4 scoreboard: any sequence of SACKs and cumulative ACKs matches a per-byte model, the range cap included, across the wrap', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(
        fc.oneof(
          fc.tuple(fc.constant('add' as const), fc.nat({ max: SPAN - 1 }), fc.integer({ min: 1, max: 40 })),
          fc.tuple(fc.constant('ack' as const), fc.nat({ max: 30 }), fc.constant(0)),
        ),
        { maxLength: 40 },
      ),
      (base, cap, ops) => {
        const sb = new SackScoreboard(cap);
        const model = new Model(cap);
        let una = 0;
        for (const [op, a, b] of ops) {
          if (op === 'add') {
            const e = Math.min(SPAN, a + b);
            sb.add(seqAdd(base, a), seqAdd(base, e));
            model.add(a, e);
          } else {
            una = Math.min(SPAN, una + a);
            sb.removeBelow(seqAdd(base, una));
            model.removeBelow(una);
          }
          const runs = model.runs();
          const total = runs.reduce((n, [s, e]) => n + e - s, 0);
          assert.equal(sb.rangeCount, runs.length);
          assert.equal(sb.sackedBytes, total);
          assert.equal(sb.isEmpty, runs.length === 0);
          assert.equal(sb.highest(base), runs.length === 0 ? base : seqAdd(base, runs[runs.length - 1][1]));
          for (let x = 0; x < SPAN; x += 7) {
            const run = runs.find(([s, e]) => s <= x && x < e);
            assert.equal(sb.skipSacked(seqAdd(base, x)), seqAdd(base, run ? run[1] : x));
            const next = runs.find(([s]) => s > x);
            const limit = Math.min(SPAN, x + 50);
            assert.equal(sb.nextSackedAfter(seqAdd(base, x), seqAdd(base, limit)), seqAdd(base, next ? Math.min(next[0], limit) : limit));
            let between = 0;
            for (let k = x; k < limit; k++) between += model.held[k];
            assert.equal(sb.sackedBetween(seqAdd(base, x), seqAdd(base, limit)), between);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('RFC 2018 §3 / CVE-2019-11477: 100,000 adversarial SACK blocks cost bounded time and memory', { timeout: 120_000 }, () => {
  const sb = new SackScoreboard();
  const una = 0xfff00000;
  const started = process.hrtime.bigint();
  // Every other byte, from the top down (every block inserts at the front), then from the bottom up (every
  // block lands behind all the others), then blocks that each merge two ranges.
  for (let k = 50_000; k > 0; k--) sb.add(seqAdd(una, 2 * k), seqAdd(una, 2 * k + 1));
  assert.ok(sb.rangeCount <= MAX_SACK_RANGES, `ranges held: ${sb.rangeCount}`);
  sb.clear();
  for (let k = 1; k <= 25_000; k++) sb.add(seqAdd(una, 4 * k), seqAdd(una, 4 * k + 1));
  for (let k = 1; k <= 25_000; k++) sb.add(seqAdd(una, 4 * k + 1), seqAdd(una, 4 * k + 4));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(sb.rangeCount <= MAX_SACK_RANGES, `ranges held: ${sb.rangeCount}`);
  assert.ok(elapsedMs < 1000, `100,000 blocks took ${elapsedMs.toFixed(0)} ms`);
  // The holes next to SND.UNA, which retransmission needs first, are the ones kept.
  assert.equal(sb.skipSacked(seqAdd(una, 4)), seqAdd(una, 4 * MAX_SACK_RANGES + 4));
  assert.equal(sb.skipSacked(seqAdd(una, 3)), seqAdd(una, 3));
});

test('RFC 2018 §3 / CVE-2019-11477: a connection fed 100,000 crafted SACK blocks stays fast and keeps sending', { timeout: 120_000 }, () => {
  const config = tcpConfig({ sack: true, timestamps: false });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const b = link.b!;
  const chunk = Buffer.alloc(65536, 3);
  link.onStep = () => {
    while (a.write(chunk) > 0);
    for (let d = b.read(); d !== null; d = b.read());
  };
  link.runUntilTime(link.now + 300); // a window of megabytes in flight
  // From now on the attacker speaks for B (the link is not stepped again): duplicate ACKs of B's latest.
  const template = link.log.filter((l) => !l.fromA).at(-1)!.seg;
  const una = template.ack;
  let span = 0;
  for (const { fromA, seg } of link.log) if (fromA) span = Math.max(span, (seg.seq + seg.payload.length - una) | 0);
  const slots = Math.floor(span / 8) - 1;
  assert.ok(slots > 50_000, `a window of ${span} bytes`);
  let sent = 0;
  const emit = (): void => void sent++;
  const started = process.hrtime.bigint();
  for (let k = 0; k < 25_000; k++) {
    // Four one-byte blocks per ACK, every other byte, scattered over the window.
    const base = ((k * 7919) % slots) * 8;
    const sack: Array<[number, number]> = [];
    for (let j = 0; j < 4; j++) sack.push([seqAdd(una, base + 2 * j + 1), seqAdd(una, base + 2 * j + 2)]);
    a.handleSegment({ ...template, options: { sack }, payload: Buffer.alloc(0) }, link.now);
    if (k % 16 === 0) a.transmit(link.now, emit);
  }
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(elapsedMs < 1500, `100,000 blocks took ${elapsedMs.toFixed(0)} ms`);
  assert.ok(sent > 0, 'A still sends (retransmissions of the holes)');
  assert.notEqual(a.state, 'CLOSED');
});
