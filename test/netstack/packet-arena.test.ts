import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PacketArena } from '../../src/netstack/packet-arena.js';

test('packets from an arena never overlap until release, and reuse the same memory after it', () => {
  const arena = new PacketArena();
  const a = arena.alloc(65_000).fill(1);
  const b = arena.alloc(65_000).fill(2);
  assert.ok(a.every((x) => x === 1), 'a later packet overwrote an earlier one');
  assert.equal(a.buffer, b.buffer);
  arena.release();
  const c = arena.alloc(100);
  assert.equal(c.buffer, a.buffer);
  assert.equal(c.byteOffset, a.byteOffset);
});

test('an arena moves to a new slab when full, leaving packets in use intact', () => {
  const arena = new PacketArena();
  const first = arena.alloc(3 << 20).fill(7);
  const second = arena.alloc(2 << 20);
  assert.notEqual(second.buffer, first.buffer);
  assert.ok(first.every((x) => x === 7));
  assert.equal(arena.alloc(8 << 20).length, 8 << 20);
});
