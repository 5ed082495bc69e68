import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { TcpFlags, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { establishedPair, lastFrom } from './sim-link.js';

const { ACK } = TcpFlags;

function acksOf(conn: TcpConnection, now: number): TcpRepr[] {
  const out: TcpRepr[] = [];
  conn.transmit(now, (s) => out.push({ ...s, options: { ...s.options, sack: s.options.sack?.map(([l, r]): [number, number] => [l, r]) } }));
  return out;
}

test('out-of-order bounds: blocks and bytes beyond the limits are dropped, never SACKed, and resent data fills in', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ delayedAckMs: 0, maxOutOfOrderSegments: 2, maxOutOfOrderBytes: 3000 }));
  const b = link.b as TcpConnection;
  const base = lastFrom(link, true).seq; // B's rcvNxt
  const ackOfB = lastFrom(link, false).seq; // B's sndNxt
  const data = (off: number, len: number): TcpRepr => ({
    srcPort: 40000, dstPort: 80, seq: (base + off) >>> 0, ack: ackOfB, flags: ACK, window: 1000, urgent: 0, options: {},
    payload: Buffer.alloc(len, off / 1000),
  });
  const at = (off: number) => (base + off) >>> 0;
  let t = link.now;
  b.handleSegment(data(1000, 1000), ++t);
  b.handleSegment(data(3000, 1000), ++t);
  b.handleSegment(data(5000, 1000), ++t); // a third block: over the block bound
  let acks = acksOf(b, t);
  assert.equal(acks.length, 3, 'one duplicate ACK per out-of-order segment, even for a batch');
  for (const ack of acks) {
    assert.equal(ack.ack, base);
    assert.deepEqual(ack.options.sack, [[at(3000), at(4000)], [at(1000), at(2000)]]);
  }

  b.handleSegment(data(2000, 1000), ++t); // joins the two blocks: 3000 bytes, the byte bound
  b.handleSegment(data(4000, 1000), ++t); // would be 4000 bytes: dropped
  acks = acksOf(b, t);
  assert.deepEqual(acks.at(-1)?.options.sack, [[at(1000), at(4000)]]);
  assert.equal(b.recvBuffered, 0);

  b.handleSegment(data(0, 1000), ++t); // fills the hole
  acks = acksOf(b, t);
  assert.equal(acks.at(-1)?.ack, at(4000));
  assert.equal(acks.at(-1)?.options.sack, undefined);
  assert.equal(b.recvBuffered, 4000);
  const got: Buffer[] = [];
  for (let c = b.read(); c !== null; c = b.read()) got.push(c);
  const all = Buffer.concat(got);
  for (let k = 0; k < 4; k++) assert.equal(all[k * 1000], k, `block ${k} in place`);
});

test('delayed ACK: one segment is acknowledged after delayedAckMs, two full segments at once', () => {
  const link = establishedPair(tcpConfig(), tcpConfig({ delayedAckMs: 40 }));
  const a = link.a as TcpConnection;
  const start = link.now;
  a.write(Buffer.alloc(100));
  link.runUntilTime(start + 100);
  const acks = link.log.filter((l) => !l.fromA && l.t >= start);
  assert.deepEqual(acks.map((l) => l.t - start), [5 + 40], 'ACK held for 40 ms');

  const second = link.now;
  a.write(Buffer.alloc(2 * 1448));
  link.runUntilTime(second + 100);
  const acks2 = link.log.filter((l) => !l.fromA && l.t >= second);
  assert.deepEqual(acks2.map((l) => l.t - second), [5], 'two full segments are acknowledged immediately');
});

test('SACK: a single lost segment is resent alone by fast retransmit, before any RTO', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ delayedAckMs: 0 }));
  const a = link.a as TcpConnection;
  const firstSeq = lastFrom(link, true).seq;
  let dropped = false;
  link.dropIf = (seg, fromA) => {
    if (fromA && seg.seq === ((firstSeq + 2 * 1448) >>> 0) && seg.payload.length > 0 && !dropped) return (dropped = true);
    return false;
  };
  const start = link.now;
  a.write(Buffer.alloc(10 * 1448, 3));
  assert.ok(link.run(() => link.b?.recvBuffered === 10 * 1448, 10_000));
  const sent = link.log.filter((l) => l.fromA && l.t >= start && l.seg.payload.length > 0);
  assert.equal(sent.length, 11, 'ten segments and one retransmission');
  const resent = sent.filter((l, i) => sent.findIndex((m) => m.seg.seq === l.seg.seq) !== i);
  assert.equal(resent.length, 1);
  assert.equal(resent[0].seg.seq, (firstSeq + 2 * 1448) >>> 0);
  assert.ok(resent[0].t - start < 200, `fast retransmit at ${resent[0].t - start} ms, not the RTO`);
  const sacks = link.log.filter((l) => !l.fromA && l.seg.options.sack !== undefined);
  assert.ok(sacks.length >= 3, 'the receiver reported SACK blocks');
});

test('no SACK: NewReno recovers a loss by fast retransmit too', () => {
  const cfg = tcpConfig({ delayedAckMs: 0, sack: false });
  const link = establishedPair(cfg, cfg);
  const a = link.a as TcpConnection;
  const firstSeq = lastFrom(link, true).seq;
  let dropped = false;
  link.dropIf = (seg, fromA) => {
    if (fromA && seg.seq === ((firstSeq + 1448) >>> 0) && seg.payload.length > 0 && !dropped) return (dropped = true);
    return false;
  };
  const start = link.now;
  a.write(Buffer.alloc(10 * 1448, 3));
  assert.ok(link.run(() => link.b?.recvBuffered === 10 * 1448, 10_000));
  const resent = link.log.filter((l) => l.fromA && l.t >= start && l.seg.seq === ((firstSeq + 1448) >>> 0) && l.seg.payload.length > 0);
  assert.equal(resent.length, 2);
  assert.ok(resent[1].t - start < 200);
  assert.ok(link.log.every((l) => l.seg.options.sack === undefined));
});

test('PAWS: a segment with an older timestamp is dropped and answered with an ACK', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ delayedAckMs: 0 }));
  const b = link.b as TcpConnection;
  const fromA = lastFrom(link, true);
  const tsval = fromA.options.timestamp?.value ?? 0;
  const segment = (value: number): TcpRepr => ({
    ...fromA, flags: ACK, options: { timestamp: { value, echo: 0 } }, payload: Buffer.alloc(10, 1),
  });
  b.handleSegment(segment((tsval - 1000) >>> 0), link.now);
  assert.equal(b.recvBuffered, 0, 'the old duplicate is dropped');
  assert.deepEqual(acksOf(b, link.now).map((s) => [s.flags, s.ack]), [[ACK, fromA.seq]]);
  b.handleSegment(segment((tsval + 1) >>> 0), link.now);
  assert.equal(b.recvBuffered, 10);
});
