import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { WireError } from '../../../src/netstack/wire/reprs.js';
import {
  emitVirtioNetHdr,
  parseVirtioNetHdr,
  VIRTIO_NET_HDR_LEN,
  VirtioGsoType,
  VirtioNetFlags,
} from '../../../src/netstack/wire/virtio-net-hdr.js';

const u16 = fc.nat(0xffff);

test('known answer: a TSO IPv4 header as the kernel lays it out (little-endian)', () => {
  // NEEDS_CSUM, TCPV4, hdr_len 52, gso_size 1448, csum_start 20, csum_offset 16.
  const bytes = Buffer.from('01013400a8051400' + '1000', 'hex');
  assert.deepEqual(parseVirtioNetHdr(bytes), {
    flags: VirtioNetFlags.NEEDS_CSUM,
    gsoType: VirtioGsoType.TCPV4,
    hdrLen: 52,
    gsoSize: 1448,
    csumStart: 20,
    csumOffset: 16,
  });
});

test('emit then parse gives back the header', () => {
  fc.assert(
    fc.property(
      fc.record(
        { flags: fc.nat(255), gsoType: fc.nat(255), hdrLen: u16, gsoSize: u16, csumStart: u16, csumOffset: u16 },
        { noNullPrototype: true },
      ),
      fc.nat(6),
      (h, at) => {
        const out = Buffer.alloc(at + VIRTIO_NET_HDR_LEN);
        assert.equal(emitVirtioNetHdr(h, out, at), 10);
        assert.deepEqual(parseVirtioNetHdr(out.subarray(at)), h);
      },
    ),
  );
});

test('a header shorter than 10 bytes is TRUNCATED', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 9 }), (raw) => {
      assert.throws(() => parseVirtioNetHdr(Buffer.from(raw)), (e: unknown) => e instanceof WireError && e.code === 'TRUNCATED');
    }),
  );
});
