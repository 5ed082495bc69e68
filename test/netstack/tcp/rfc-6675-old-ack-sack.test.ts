import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import type { TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { establishedPair, type SimLink } from './sim-link.js';

/** A bulk sender A with ~100 KB or more in flight on a clean link. */
function bulk(): SimLink {
  const config = tcpConfig({ sack: true });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const b = link.b!;
  const chunk = Buffer.alloc(65536, 5);
  link.onStep = () => {
    while (a.write(chunk) > 0);
    for (let d = b.read(); d !== null; d = b.read());
  };
  link.runUntilTime(link.now + 300);
  return link;
}

/** Data segments A sent at or after `from` that repeat a sequence number A had already sent. */
function retransmissionsSince(link: SimLink, from: number): number {
  const seen = new Set<number>();
  let n = 0;
  for (const { t, fromA, seg } of link.log) {
    if (!fromA || seg.payload.length === 0) continue;
    if (seen.has(seg.seq) && t >= from) n++;
    seen.add(seg.seq);
  }
  return n;
}

function ackFromB(link: SimLink, below: number): TcpRepr {
  for (let i = link.log.length - 1; i >= 0; i--) {
    const { fromA, seg } = link.log[i];
    if (!fromA && ((below - seg.ack) | 0) > 20 * 1448) return seg;
  }
  throw new Error('no old enough ACK');
}

test('RFC 6675 §5 / RFC 2883: a delayed old ACK whose SACK blocks lie below SND.UNA starts no fast recovery', () => {
  const link = bulk();
  const a = link.a!;
  const latest = link.log.filter((l) => !l.fromA).at(-1)!.seg;
  const sndUna = latest.ack;
  const old = ackFromB(link, sndUna);
  // What a reordered ACK from earlier looks like once the holes it reported were filled: SACK blocks that are
  // now all at or below SND.UNA (stale, or D-SACK reporting duplicates).
  const stale: TcpRepr = {
    ...old,
    options: {
      ...old.options,
      sack: [
        [(old.ack + 1448) >>> 0, (old.ack + 4 * 1448) >>> 0],
        [(old.ack + 5 * 1448) >>> 0, (old.ack + 9 * 1448) >>> 0],
        [(old.ack + 10 * 1448) >>> 0, (old.ack + 14 * 1448) >>> 0],
      ],
    },
    payload: Buffer.alloc(0),
  };
  const at = link.now;
  a.handleSegment(stale, link.now);
  link.runUntilTime(link.now + 200);
  assert.equal(retransmissionsSince(link, at), 0, 'nothing was lost, so nothing is retransmitted');
});

test('RFC 6675 §5: ACKs with SACK blocks reordered on a lossy link cause no retransmission beyond the losses', () => {
  // Rare loss A→B creates SACK blocks; B→A, every third ACK is held back 30 ms (three round trips) and overtaken.
  // Without timestamps, as PAWS would drop most such ACKs (not those from the same millisecond).
  const config = tcpConfig({ sack: true, timestamps: false });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const b = link.b!;
  let dataSegments = 0;
  let lost = 0;
  let picks = 0;
  const held: Array<{ at: number; seg: TcpRepr }> = [];
  link.dropIf = (seg, fromA) => {
    if (fromA) {
      if (seg.payload.length > 0 && ++dataSegments % 400 === 0) {
        lost++;
        return true;
      }
      return false;
    }
    if (++picks % 3 !== 0) return false;
    held.push({ at: link.now + 5 + 30, seg });
    return true;
  };
  const total = 20 * 1024 * 1024;
  let written = 0;
  let got = 0;
  const chunk = Buffer.alloc(65536, 5);
  link.onStep = () => {
    while (held.length > 0 && held[0].at <= link.now) a.handleSegment(held.shift()!.seg, link.now);
    while (written < total) {
      const n = a.write(chunk.subarray(0, Math.min(chunk.length, total - written)));
      if (n === 0) break;
      written += n;
    }
    for (let d = b.read(); d !== null; d = b.read()) got += d.length;
  };
  const start = link.now;
  assert.ok(link.run(() => got === total, 60_000), `delivered ${got}`);
  const retransmitted = retransmissionsSince(link, start);
  assert.ok(retransmitted <= 1.5 * lost, `retransmitted ${retransmitted} for ${lost} losses`);
});
