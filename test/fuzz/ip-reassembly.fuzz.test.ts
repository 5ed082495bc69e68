// Fuzzes IP fragment reassembly with sequences of fragments as a sender controls them (offsets, lengths, the
// more-fragments flag, interleaved datagrams, time passing): it signals bad fragments by dropping them, so nothing
// may be thrown; a reassembled datagram has every byte at its place and fits the limit; no sequence is slow.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz } from './fuzz-harness.js';
import { FragmentReassembler, type ReassemblyLimits } from '../../src/netstack/ip-reassembly.js';

const KEYS = ['a', 'b', 'c', 'd'];
const MAX_DATAGRAM = 65535;
/** Each datagram's bytes are a pattern of its key and position, so a fragment put at the wrong offset shows. */
const PATTERNS = KEYS.map((_, k) => {
  const pattern = Buffer.alloc(MAX_DATAGRAM + 0x800);
  for (let p = 0; p < pattern.length; p++) pattern[p] = (p * 7 + (p >>> 8) + k * 61) & 0xff;
  return pattern;
});
const TIGHT: Partial<ReassemblyLimits> = { maxDatagrams: 3, maxBytes: 4096, timeoutMs: 10_000 };

/**
 * An input is a limits byte, then fragments of 5 bytes: control (bits 0-1 the datagram, bit 2 more fragments,
 * bits 3-5 seconds passing before it), offset (16 bits, rounded down to 8 as both IP versions carry it), and
 * length (11 bits).
 */
function replay(input: Buffer): void {
  if (input.length === 0) return;
  const limits = input[0]! & 1 ? TIGHT : {};
  const maxDatagramSize = limits.maxDatagramSize ?? MAX_DATAGRAM;
  const reassembler = new FragmentReassembler(limits);
  let now = 0;
  for (let at = 1; at + 5 <= input.length; at += 5) {
    const control = input[at]!;
    const key = control & 3;
    const more = (control & 4) !== 0;
    now += ((control >>> 3) & 7) * 2000;
    const offset = input.readUInt16BE(at + 1) & 0xfff8;
    const length = input.readUInt16BE(at + 3) & 0x7ff;
    // The stack hands over fragments only: a packet with offset 0 and no more fragments is whole.
    if (offset === 0 && !more) continue;
    const whole = reassembler.add(KEYS[key]!, offset, more, PATTERNS[key]!.subarray(offset, offset + length), now)?.payload ?? null;
    if (whole !== null) {
      assert.ok(whole.length > 0 && whole.length <= maxDatagramSize, `a reassembled datagram of ${whole.length} bytes`);
      assert.ok(whole.equals(PATTERNS[key]!.subarray(0, whole.length)), 'a reassembled datagram has bytes out of place');
    }
  }
}

function fragments(limits: number, pieces: Array<[number, number, boolean, number]>): Buffer {
  const out = Buffer.alloc(1 + 5 * pieces.length);
  out[0] = limits;
  pieces.forEach(([key, offset, more, length], i) => {
    out[1 + 5 * i] = key | (more ? 4 : 0);
    out.writeUInt16BE(offset, 2 + 5 * i);
    out.writeUInt16BE(length, 4 + 5 * i);
  });
  return out;
}

test('fuzz: IP fragment reassembly', (t) => {
  const inOrder: Array<[number, number, boolean, number]> = [0, 1, 2, 3].map((i) => [0, i * 1480, i < 3, i < 3 ? 1480 : 100]);
  fuzz(
    {
      name: 'ip-reassembly',
      corpus: [
        fragments(0, inOrder),
        fragments(1, [...inOrder].reverse()),
        fragments(0, [[1, 8, false, 5], [2, 0, true, 16], [1, 0, true, 8], [2, 16, false, 1]]),
        fragments(1, [[3, 0, true, 2040], [3, 2040, true, 2040], [3, 4080, false, 8], [0, 0, true, 8]]),
        fragments(0, Array.from({ length: 64 }, (_, i) => [i & 3, 8 * (63 - i), true, 8] as [number, number, boolean, number])),
      ],
      maxLength: 1 + 5 * 512,
      run: replay,
      isParserError: () => false,
    },
    t,
  );
});
