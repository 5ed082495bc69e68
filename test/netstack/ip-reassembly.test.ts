import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FragmentReassembler } from '../../src/netstack/ip-reassembly.js';

interface Piece {
  offset: number;
  more: boolean;
  data: Buffer;
}

/** Cuts `payload` at multiples of 8 (every fragment but the last carries a multiple of 8 bytes). */
function fragment(payload: Buffer, cuts: number[]): Piece[] {
  const points = [...new Set(cuts.map((c) => c * 8).filter((c) => c > 0 && c < payload.length))].sort((a, b) => a - b);
  const bounds = [0, ...points, payload.length];
  return bounds.slice(0, -1).map((start, i) => ({
    offset: start,
    more: i < bounds.length - 2,
    data: payload.subarray(start, bounds[i + 1]),
  }));
}

function shuffle<T>(items: T[], keys: number[]): T[] {
  return items
    .map((item, i) => ({ item, key: keys[i % Math.max(keys.length, 1)] ?? 0, i }))
    .sort((a, b) => a.key - b.key || a.i - b.i)
    .map((x) => x.item);
}

test('fragments in any order, with duplicates, reassemble the original payload exactly once', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.array(fc.nat(400), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.boolean(),
      (raw, cuts, keys, duplicate) => {
        const payload = Buffer.from(raw);
        const pieces = shuffle(fragment(payload, cuts), keys);
        // A duplicate after completion would start a new datagram, so it arrives before the last piece.
        if (duplicate && pieces.length > 1) pieces.splice(1, 0, pieces[0]!);
        const reassembler = new FragmentReassembler();
        const results = pieces.map((p, i) => reassembler.add('k', p.offset, p.more, p.data, i));
        const done = results.filter((r) => r !== null);
        assert.equal(done.length, 1);
        assert.notEqual(results[results.length - 1], null);
        assert.deepEqual(done[0]!.payload, payload);
        assert.deepEqual(reassembler.stats, { completed: 1, dropped: 0, timedOut: 0 });
        assert.equal(reassembler.pollAt(), Infinity);
      },
    ),
  );
});

test('interleaved datagrams are kept apart by key', () => {
  const r = new FragmentReassembler();
  const a = Buffer.alloc(24, 'a');
  const b = Buffer.alloc(24, 'b');
  assert.equal(r.add('a', 0, true, a.subarray(0, 16), 0), null);
  assert.equal(r.add('b', 16, false, b.subarray(16), 0), null);
  assert.equal(r.add('b', 0, true, b.subarray(0, 16), 0)?.payload.toString(), b.toString());
  assert.equal(r.add('a', 16, false, a.subarray(16), 0)?.payload.toString(), a.toString());
});

test('fragment data is copied, so the caller may reuse its receive buffer', () => {
  const r = new FragmentReassembler();
  const rx = Buffer.alloc(8, 1);
  r.add('k', 0, true, rx, 0);
  rx.fill(9);
  assert.deepEqual([...r.add('k', 8, false, rx.subarray(0, 2), 0)!.payload], [1, 1, 1, 1, 1, 1, 1, 1, 9, 9]);
});

test('an overlapping fragment drops the whole datagram', () => {
  fc.assert(
    fc.property(fc.nat(10), fc.nat(10), fc.integer({ min: 1, max: 10 }), (firstStart, secondStart, units) => {
      const r = new FragmentReassembler();
      const first = { offset: firstStart * 8, length: units * 8 };
      const second = { offset: secondStart * 8, length: 16 };
      fc.pre(first.offset < second.offset + second.length && second.offset < first.offset + first.length);
      fc.pre(!(first.offset === second.offset && first.length === second.length));
      r.add('k', first.offset, true, Buffer.alloc(first.length), 0);
      assert.equal(r.add('k', second.offset, true, Buffer.alloc(second.length), 0), null);
      assert.equal(r.stats.dropped, 1);
      assert.equal(r.pollAt(), Infinity);
    }),
  );
});

test('inconsistent ends are dropped: two different last fragments, data past the end, misaligned middles', () => {
  const r = new FragmentReassembler();
  r.add('two-ends', 16, false, Buffer.alloc(4), 0);
  r.add('two-ends', 24, false, Buffer.alloc(4), 0);
  r.add('past-end', 8, false, Buffer.alloc(8), 0);
  r.add('past-end', 16, true, Buffer.alloc(8), 0);
  r.add('end-before-data', 16, true, Buffer.alloc(8), 0);
  r.add('end-before-data', 0, false, Buffer.alloc(8), 0);
  r.add('misaligned', 0, true, Buffer.alloc(12), 0);
  r.add('empty-middle', 0, true, Buffer.alloc(0), 0);
  assert.deepEqual(r.stats, { completed: 0, dropped: 5, timedOut: 0 });
  assert.equal(r.pollAt(), Infinity);
});

test('a datagram larger than maxDatagramSize is dropped', () => {
  const r = new FragmentReassembler({ maxDatagramSize: 100 });
  assert.equal(r.add('k', 0, true, Buffer.alloc(64), 0), null);
  assert.equal(r.add('k', 64, false, Buffer.alloc(40), 0), null);
  assert.equal(r.add('k', 64, false, Buffer.alloc(36), 0), null); // the datagram is gone: this starts anew
  assert.deepEqual(r.stats, { completed: 0, dropped: 1, timedOut: 0 });
});

test('too many datagrams or too many bytes at once are dropped and counted', () => {
  const r = new FragmentReassembler({ maxDatagrams: 2, maxBytes: 40 });
  r.add('a', 0, true, Buffer.alloc(16), 0);
  r.add('b', 0, true, Buffer.alloc(16), 0);
  assert.equal(r.add('c', 0, true, Buffer.alloc(8), 0), null);
  assert.equal(r.stats.dropped, 1);
  assert.equal(r.add('a', 16, true, Buffer.alloc(16), 0), null); // 48 bytes > 40: 'a' goes
  assert.equal(r.stats.dropped, 2);
  assert.equal(r.add('b', 16, false, Buffer.alloc(8), 0)?.payload.length, 24);
  assert.equal(r.add('c', 8, false, Buffer.alloc(1), 0), null); // room again
  assert.deepEqual(r.stats, { completed: 1, dropped: 2, timedOut: 0 });
});

test('datagrams time out at their deadline, reported by pollAt', () => {
  const r = new FragmentReassembler({ timeoutMs: 1000 });
  assert.equal(r.pollAt(), Infinity);
  r.add('a', 0, true, Buffer.alloc(8), 100);
  r.add('b', 0, true, Buffer.alloc(8), 600);
  assert.equal(r.pollAt(), 1100);
  r.expire(1099);
  assert.equal(r.stats.timedOut, 0);
  r.expire(1100);
  assert.equal(r.stats.timedOut, 1);
  assert.equal(r.pollAt(), 1600);
  // A late fragment of 'b' finds it expired and starts over instead of completing it.
  assert.equal(r.add('b', 8, false, Buffer.alloc(8), 1600), null);
  assert.deepEqual(r.stats, { completed: 0, dropped: 0, timedOut: 2 });
  assert.equal(r.pollAt(), 2600);
});

test('RFC 792 / RFC 4443 §2.4 / RFC 8200 §4.5: a completed datagram carries the offset-0 fragment\'s packet and tag, whatever the arrival order', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 9, maxLength: 2000 }),
      fc.array(fc.nat(250), { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (raw, cuts, keys) => {
        const pieces = shuffle(fragment(Buffer.from(raw), [1, ...cuts]), keys);
        const r = new FragmentReassembler();
        const packetOf = (offset: number): Buffer => Buffer.concat([Buffer.from(`header@${offset};`), Buffer.alloc(2000, 7)]);
        const done = pieces.map((p) => r.add('k', p.offset, p.more, p.data, 0, packetOf(p.offset), 100 + p.offset)).pop();
        assert.equal(done?.firstTag, 100);
        assert.equal(done?.firstPacket.length, 1280);
        assert.deepEqual(done?.firstPacket, packetOf(0).subarray(0, 1280));
      },
    ),
  );
});
