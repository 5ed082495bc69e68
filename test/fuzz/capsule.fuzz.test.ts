// Fuzzes the capsule stream decoder (RFC 9297) the UDP tunnel reads from a peer: only CapsuleError may be thrown,
// the datagrams do not depend on how the stream is cut into chunks, and no stream is slow to decode however
// finely it is cut (a peer chooses the HTTP/2 DATA frame sizes).

import { test } from 'node:test';
import { assertSame, fuzz } from './fuzz-harness.js';
import { CapsuleDecoder, CapsuleError, encodeDatagramCapsule, writeVarint } from '../../src/tunnel/capsule.js';

interface Decoded {
  datagrams: number;
  /** FNV-1a over each datagram's length and edge bytes, where a misplaced chunk boundary shows: cheap per datagram. */
  digest: number;
  error: string;
}

/** What a decoder delivers for `stream` pushed in chunks of `sizes` (cycled), and how it stopped. */
function decode(stream: Buffer, sizes: number[]): Decoded {
  const decoded: Decoded = { datagrams: 0, digest: 0x811c9dc5, error: '' };
  const mix = (byte: number): void => {
    decoded.digest = Math.imul(decoded.digest ^ byte, 0x01000193);
  };
  const decoder = new CapsuleDecoder((payload) => {
    decoded.datagrams++;
    mix(payload.length & 0xff);
    mix(payload.length >>> 8);
    if (payload.length > 0) {
      mix(payload[0]!);
      mix(payload[payload.length - 1]!);
    }
  });
  try {
    for (let at = 0, i = 0; at < stream.length; i++) {
      const end = Math.min(stream.length, at + sizes[i % sizes.length]!);
      decoder.push(stream.subarray(at, end));
      at = end;
    }
  } catch (caught) {
    if (!(caught instanceof CapsuleError)) throw caught;
    decoded.error = caught.message;
  }
  return decoded;
}

/** A capsule of any type with a varint of the given width for its length. */
function capsule(type: number, body: Buffer, lengthWidth = 0): Buffer {
  const header = Buffer.alloc(16);
  let at = writeVarint(header, 0, type);
  if (lengthWidth === 2) {
    header.writeUInt16BE(0x4000 | body.length, at);
    at += 2;
  } else {
    at = writeVarint(header, at, body.length);
  }
  return Buffer.concat([header.subarray(0, at), body]);
}

function corpus(): Buffer[] {
  const datagrams = [Buffer.alloc(0), Buffer.from('dns?'), Buffer.alloc(1200, 7)].map((p) => encodeDatagramCapsule(p));
  // The start of the largest datagram: the fuzzer's growth mutation fills it up to the limit, now and then.
  const largest = encodeDatagramCapsule(Buffer.alloc(0xffe7, 1)).subarray(0, 64);
  return [
    ...datagrams,
    largest,
    Buffer.concat(datagrams.slice(0, 3)),
    capsule(0x1234, Buffer.from('unknown capsule type')),
    capsule(0, Buffer.from('\x05context 5')),
    capsule(0, Buffer.from('\x00non-minimal length'), 2),
    Buffer.concat([capsule(0x3fffffff, Buffer.alloc(3)), datagrams[1]!]),
  ];
}

test('fuzz: capsule stream, cut into chunks', (t) => {
  fuzz(
    {
      name: 'capsule',
      // The first byte picks how the rest is cut; single bytes and small chunks are what a hostile peer sends.
      corpus: corpus().flatMap((stream) => [0, 1, 2].map((cut) => Buffer.concat([Buffer.from([cut]), stream]))),
      dictionary: ['00', '3f', '4000', '7fff', '80010000', 'bfffffff', 'c000000000000000', 'c000000000010010', 'ffffffffffffffff'].map((h) => Buffer.from(h, 'hex')),
      maxLength: 0x10000 + 64,
      run(input) {
        const stream = input.subarray(1);
        const whole = decode(stream, [stream.length || 1]);
        const cut = input[0]! % 3;
        const sizes = cut === 0 ? [1, 7] : cut === 1 ? [8] : [1 + (input.length % 97), 3, 1 + (input.length % 1021)];
        assertSame(decode(stream, sizes), whole, 'the datagrams depend on how the stream was cut');
      },
      isParserError: (error) => error instanceof CapsuleError,
    },
    t,
  );
});
