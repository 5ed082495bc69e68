import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { OutOfOrderAssembler, ReceiveQueue } from '../../../src/netstack/tcp/tcp-receive-buffer.js';
import { SackScoreboard } from '../../../src/netstack/tcp/tcp-sack-scoreboard.js';
import { SendBuffer } from '../../../src/netstack/tcp/tcp-send-buffer.js';
import { seqAdd } from '../../../src/netstack/tcp/tcp-seq.js';

function pattern(n: number, offset: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (offset + i) * 31 & 0xff;
  return b;
}

test('SendBuffer: peek returns the written bytes at any offset, across chunks and after consume', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 30 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 5000 }), fc.nat()), { maxLength: 30 }),
      (writes, ops) => {
        const buf = new SendBuffer(40_000);
        let stream = Buffer.alloc(0);
        let base = 0;
        for (const w of writes) {
          const data = pattern(w, stream.length);
          const n = buf.write(data);
          assert.equal(n, Math.min(w, 40_000 - (stream.length - base)));
          stream = Buffer.concat([stream, data.subarray(0, n)]);
        }
        for (const [off, len, consume] of ops) {
          const avail = stream.length - base;
          if (avail === 0) break;
          const o = off % avail;
          const l = Math.min(len, avail - o);
          assert.deepEqual(buf.peek(o, l), stream.subarray(base + o, base + o + l));
          const c = consume % (avail + 1);
          buf.consume(c);
          base += c;
          assert.equal(buf.length, stream.length - base);
        }
      },
    ),
  );
});

test('SendBuffer: a segment inside one chunk is a view of its own copy; write() takes only the free space', () => {
  const buf = new SendBuffer(100);
  const data = Buffer.alloc(80, 7);
  assert.equal(buf.write(data), 80);
  assert.equal(buf.write(Buffer.alloc(50)), 20);
  assert.equal(buf.free, 0);
  assert.notEqual(buf.peek(10, 20).buffer, data.buffer);
  assert.equal(buf.peek(10, 20).buffer, buf.peek(30, 20).buffer);
});

test('OutOfOrderAssembler: any arrival order with duplicates and overlaps reassembles the stream', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.array(fc.tuple(fc.nat({ max: 5000 }), fc.integer({ min: 1, max: 800 })), { minLength: 1, maxLength: 60 }),
      (isn, pieces) => {
        const total = 6000;
        const stream = pattern(total, 0);
        const asm = new OutOfOrderAssembler(1000, 1 << 20);
        const queue = new ReceiveQueue();
        let rcvNxt = isn;
        let delivered = 0;
        const deliver = (off: number, len: number) => {
          const seq = seqAdd(isn, off);
          const skip = (seq - rcvNxt) | 0;
          if (skip > 0) {
            assert.ok(asm.insert(seq, stream.subarray(off, off + len)));
          } else if (skip + len > 0) {
            queue.push(stream.subarray(off - skip, off + len));
            rcvNxt = seqAdd(rcvNxt, skip + len);
            rcvNxt = asm.drainInto(rcvNxt, queue);
          }
          delivered = (rcvNxt - isn) >>> 0;
        };
        for (const [off, len] of pieces) deliver(off, Math.min(len, total - off));
        deliver(0, total); // the sender finally fills every hole
        assert.equal(delivered, total);
        assert.ok(asm.isEmpty);
        assert.equal(asm.bytes, 0);
        const parts: Buffer[] = [];
        for (let b = queue.shift(); b !== null; b = queue.shift()) parts.push(b);
        assert.deepEqual(Buffer.concat(parts), stream);
      },
    ),
  );
});

test('OutOfOrderAssembler: the block and byte bounds reject a segment whole', () => {
  const asm = new OutOfOrderAssembler(2, 300);
  assert.ok(asm.insert(100, Buffer.alloc(100)));
  assert.ok(asm.insert(300, Buffer.alloc(100)));
  assert.ok(!asm.insert(500, Buffer.alloc(10)), 'a third block');
  assert.ok(asm.insert(200, Buffer.alloc(100)), 'filling the gap merges into one block');
  assert.equal(asm.blockCount, 1);
  assert.ok(!asm.insert(1000, Buffer.alloc(1)), 'bytes bound: 300 held');
  assert.equal(asm.bytes, 300);
  assert.deepEqual(asm.sackBlocks(4), [[100, 400]]);
});

test('OutOfOrderAssembler: SACK blocks put the latest segment first', () => {
  const asm = new OutOfOrderAssembler(10, 1 << 20);
  asm.insert(100, Buffer.alloc(10));
  asm.insert(300, Buffer.alloc(10));
  asm.insert(200, Buffer.alloc(10));
  asm.insert(500, Buffer.alloc(10));
  asm.insert(210, Buffer.alloc(10));
  assert.deepEqual(asm.sackBlocks(3), [
    [200, 220],
    [500, 510],
    [300, 310],
  ]);
});

test('SackScoreboard: merges ranges, counts bytes, finds holes, forgets what is acknowledged', () => {
  const sb = new SackScoreboard();
  sb.add(200, 300);
  sb.add(400, 500);
  sb.add(250, 420);
  assert.equal(sb.sackedBytes, 300);
  assert.equal(sb.highest(0), 500);
  sb.add(600, 700);
  assert.equal(sb.skipSacked(150), 150);
  assert.equal(sb.skipSacked(250), 500);
  assert.equal(sb.nextSackedAfter(500, 1000), 600);
  assert.equal(sb.sackedBetween(0, 650), 350);
  sb.removeBelow(450);
  assert.equal(sb.sackedBytes, 150);
  sb.removeBelow(700);
  assert.ok(sb.isEmpty);
  // Across the wrap.
  sb.add(0xfffffff0, 0x10);
  assert.equal(sb.sackedBytes, 0x20);
  assert.equal(sb.skipSacked(0xfffffff8), 0x10);
});
