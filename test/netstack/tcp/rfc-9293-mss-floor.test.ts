import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { MIN_PEER_MSS, tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { TcpFlags, type TcpRepr } from '../../../src/netstack/wire/reprs.js';

const { SYN, ACK } = TcpFlags;

function segment(seq: number, ack: number, flags: number, options: TcpRepr['options'] = {}): TcpRepr {
  return { srcPort: 5555, dstPort: 80, seq, ack, flags, window: 65535, urgent: 0, options, payload: Buffer.alloc(0) };
}

/** A passive open from a peer announcing `mss` (no timestamps, so the MSS is the payload size). */
function acceptFrom(mss: number): TcpConnection {
  const b = TcpConnection.fromSyn(segment(5000, 0, SYN, { mss }), 9000, 0, tcpConfig({ mss: 1460 }));
  b.accept(0);
  b.transmit(0, () => {});
  b.handleSegment(segment(5001, 9001, ACK), 1);
  assert.equal(b.state, 'ESTABLISHED');
  return b;
}

test('RFC 9293 §3.7.1 / CVE-2019-11479: a peer announcing MSS 1..535 still gets segments of at least 536 bytes', () => {
  const b = acceptFrom(8);
  b.write(Buffer.alloc(20_000, 1));
  const sizes: number[] = [];
  b.transmit(2, (seg) => sizes.push(seg.payload.length));
  assert.ok(sizes.length > 0);
  assert.ok(sizes.length <= Math.ceil(20_000 / MIN_PEER_MSS), `${sizes.length} segments`);
  for (const n of sizes.slice(0, -1)) assert.equal(n, MIN_PEER_MSS);
});

test('RFC 9293 §3.7.1: the effective MSS is the peer\'s announced MSS clamped to [536, our MSS]', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65535 }), (mss) => {
      assert.equal(acceptFrom(mss).effectiveMss, Math.min(1460, Math.max(MIN_PEER_MSS, mss)));
    }),
    { numRuns: 300 },
  );
});
