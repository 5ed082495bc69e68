import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DnsFrameReader, frameDnsMessage } from '../../src/dns/dns-framing.js';

test('messages framed and cut into chunks anywhere come out whole and in order (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 20 }),
      (messages, cuts) => {
        const bytes = Buffer.concat(messages.map((m) => frameDnsMessage(Buffer.from(m))));
        const reader = new DnsFrameReader();
        const out: Buffer[] = [];
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const size = cuts[i % cuts.length]!;
          reader.push(bytes.subarray(at, at + size));
          at += size;
          for (let m = reader.next(); m !== null; m = reader.next()) out.push(m);
        }
        assert.deepEqual(out.map((m) => [...m]), messages.map((m) => [...m]));
      },
    ),
  );
});

test('a message is a copy: changing it leaves the bytes that follow alone', () => {
  const reader = new DnsFrameReader();
  reader.push(Buffer.concat([frameDnsMessage(Buffer.from([1, 2])), frameDnsMessage(Buffer.from([3, 4]))]));
  reader.next()!.fill(9);
  assert.deepEqual([...reader.next()!], [3, 4]);
  assert.equal(reader.next(), null);
});

test('a length without its message, or half a length, is no message yet', () => {
  const reader = new DnsFrameReader();
  reader.push(Buffer.from([0]));
  assert.equal(reader.next(), null);
  reader.push(Buffer.from([3, 7, 7]));
  assert.equal(reader.next(), null);
  reader.push(Buffer.from([7]));
  assert.deepEqual([...reader.next()!], [7, 7, 7]);
});

test('a message over 65,535 bytes cannot be framed', () => {
  assert.throws(() => frameDnsMessage(Buffer.alloc(0x10000)), /at most 65,535 bytes/);
});
