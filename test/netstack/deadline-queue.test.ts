import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DeadlineQueue } from '../../src/netstack/deadline-queue.js';

test('popDue returns every due item in deadline order and keeps the rest', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1000 })), fc.integer({ min: 0, max: 1000 }), (deadlines, now) => {
      const q = new DeadlineQueue<number>();
      deadlines.forEach((at, i) => q.push(at, i));
      const popped: number[] = [];
      q.popDue(now, (_item, at) => popped.push(at));
      const due = deadlines.filter((d) => d <= now).sort((a, b) => a - b);
      assert.deepEqual(popped, due);
      assert.equal(q.size, deadlines.length - due.length);
      const rest = deadlines.filter((d) => d > now);
      assert.equal(q.peekAt(), rest.length > 0 ? Math.min(...rest) : Infinity);
    }),
  );
});

test('infinite deadlines are not queued', () => {
  const q = new DeadlineQueue<string>();
  q.push(Infinity, 'never');
  assert.equal(q.size, 0);
  assert.equal(q.peekAt(), Infinity);
});
