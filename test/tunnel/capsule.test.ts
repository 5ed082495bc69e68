import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CapsuleDecoder,
  CapsuleError,
  encodeDatagramCapsule,
  readVarint,
  varintLength,
  writeVarint,
} from '../../src/tunnel/capsule.js';

test('varints round-trip and use the shortest RFC 9000 encoding', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (value) => {
      const buffer = new Uint8Array(8);
      const end = writeVarint(buffer, 0, value);
      assert.equal(end, varintLength(value));
      assert.deepEqual(readVarint(buffer.subarray(0, end), 0), [value, end]);
    }),
  );
  // RFC 9000 §A.1 examples.
  assert.deepEqual(readVarint(Buffer.from('9d7f3e7d', 'hex'), 0), [494878333, 4]);
  assert.deepEqual(readVarint(Buffer.from('7bbd', 'hex'), 0), [15293, 2]);
  assert.deepEqual(readVarint(Buffer.from('25', 'hex'), 0), [37, 1]);
  assert.equal(readVarint(Buffer.from('7b', 'hex'), 0), undefined);
});

test('datagrams survive any split of the capsule stream into chunks', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 20_000 }), { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }),
      (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => encodeDatagramCapsule(p)));
        const got: Buffer[] = [];
        const decoder = new CapsuleDecoder((payload) => got.push(Buffer.from(payload)));
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const next = Math.min(stream.length, at + cuts[i % cuts.length]!);
          decoder.push(stream.subarray(at, next));
          at = next;
        }
        assert.deepEqual(got, payloads.map((p) => Buffer.from(p)));
      },
    ),
  );
});

test('unknown capsule types and non-zero context ids are skipped', () => {
  const got: string[] = [];
  const decoder = new CapsuleDecoder((payload) => got.push(payload.toString()));
  const unknown = Buffer.from([0x40, 0x99, 3, 1, 2, 3]); // type 0x99 (2-byte varint), 3 bytes
  const otherContext = Buffer.from([0x00, 3, 2, 0x61, 0x62]); // context id 2
  const one = encodeDatagramCapsule(Buffer.from('one'));
  const two = encodeDatagramCapsule(Buffer.from('two'));
  decoder.push(Buffer.concat([unknown, one, otherContext, two]));
  assert.deepEqual(got, ['one', 'two']);
});

test('a capsule longer than any datagram is a CapsuleError', () => {
  const decoder = new CapsuleDecoder(() => assert.fail('no datagram expected'));
  const header = Buffer.alloc(5);
  header[0] = 0;
  writeVarint(header, 1, 1 << 20);
  assert.throws(() => decoder.push(header), CapsuleError);
});

test('a largest datagram pushed one byte at a time is copied a bounded number of times (found by the capsule fuzzer)', () => {
  // A peer picks the HTTP/2 DATA frame sizes: in 1-byte frames every push used to copy the whole pending capsule
  // twice (~4·10^9 bytes, 0.4 s of CPU, for one 64 KiB datagram). Counting the bytes copied is exact where a
  // timing would depend on the machine; the spies call the real functions.
  const stream = encodeDatagramCapsule(Buffer.alloc(0xffe7, 1));
  let copied = 0;
  const { concat, from } = Buffer;
  Buffer.concat = ((list: readonly Uint8Array[], totalLength?: number) => {
    const joined = concat(list, totalLength);
    copied += joined.length;
    return joined;
  }) as typeof Buffer.concat;
  Buffer.from = ((...args: Parameters<typeof Buffer.from>): Buffer => {
    const copy = (from as (...a: unknown[]) => Buffer)(...args);
    copied += copy.length;
    return copy;
  }) as typeof Buffer.from;
  const got: Buffer[] = [];
  try {
    const decoder = new CapsuleDecoder((payload) => got.push(payload));
    for (let at = 0; at < stream.length; at++) decoder.push(stream.subarray(at, at + 1));
  } finally {
    Buffer.concat = concat;
    Buffer.from = from;
  }
  assert.equal(got.length, 1);
  assert.equal(got[0]!.length, 0xffe7);
  assert.ok(copied <= 4 * stream.length, `${copied} bytes copied to decode a ${stream.length}-byte stream`);
});
