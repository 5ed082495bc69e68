import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax, seqMin } from '../../../src/netstack/tcp/tcp-seq.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Distances that sequence comparisons must handle: below 2^31. */
const distance = fc.integer({ min: 0, max: 0x7fffffff });

test('seqAdd stays unsigned 32-bit and seqDiff inverts it', () => {
  fc.assert(
    fc.property(u32, fc.integer({ min: -0x7fffffff, max: 0x7fffffff }), (a, n) => {
      const b = seqAdd(a, n);
      assert.ok(Number.isInteger(b) && b >= 0 && b <= 0xffffffff);
      assert.equal(seqDiff(b, a), n);
    }),
  );
});

test('a number plus a positive distance is after it, across the wrap', () => {
  fc.assert(
    fc.property(u32, distance, (a, d) => {
      const b = seqAdd(a, d);
      if (d === 0) {
        assert.ok(seqLe(a, b) && seqGe(a, b) && !seqLt(a, b) && !seqGt(a, b));
      } else {
        assert.ok(seqLt(a, b) && seqLe(a, b) && seqGt(b, a) && seqGe(b, a));
        assert.ok(!seqLt(b, a) && !seqGe(a, b));
      }
      assert.equal(seqMax(a, b), b);
      assert.equal(seqMin(a, b), a);
    }),
  );
});

test('ordering is transitive within half the sequence space', () => {
  fc.assert(
    fc.property(u32, fc.integer({ min: 1, max: 0x3fffffff }), fc.integer({ min: 1, max: 0x3fffffff }), (a, d1, d2) => {
      const b = seqAdd(a, d1);
      const c = seqAdd(b, d2);
      assert.ok(seqLt(a, b) && seqLt(b, c) && seqLt(a, c));
    }),
  );
});

test('seqInRange: start ≤ x < end', () => {
  fc.assert(
    fc.property(u32, fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: -100, max: (1 << 20) + 100 }), (start, len, off) => {
      const end = seqAdd(start, len);
      assert.equal(seqInRange(seqAdd(start, off), start, end), off >= 0 && off < len);
    }),
  );
});

test('known values around the wrap', () => {
  assert.equal(seqAdd(0xffffffff, 1), 0);
  assert.equal(seqDiff(0, 0xffffffff), 1);
  assert.ok(seqLt(0xfffffff0, 0x10));
  assert.ok(seqGt(0x10, 0xfffffff0));
});
