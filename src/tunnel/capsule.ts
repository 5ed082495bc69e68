// RFC 9297 capsules on an HTTP/2 stream, as connect-udp (RFC 9298) uses them: each UDP payload travels in a
// DATAGRAM capsule (type 0x00, length, then context id 0 and the payload). Integers are QUIC varints (RFC 9000 §16).

export const DATAGRAM_CAPSULE_TYPE = 0x00;
/** A UDP payload is at most 65,527 bytes; a capsule claiming far more is a broken or hostile peer. */
export const MAX_CAPSULE_LENGTH = 0x10000 + 16;

export class CapsuleError extends Error {
  readonly code = 'BAD_CAPSULE';
  constructor(message: string) {
    super(message);
    this.name = 'CapsuleError';
  }
}

/** Bytes a varint of `value` takes. */
export function varintLength(value: number): number {
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x40000000) return 4;
  return 8;
}

/** Writes `value` (below 2^53) as a QUIC varint at `offset`; returns the offset after it. */
export function writeVarint(buffer: Uint8Array, offset: number, value: number): number {
  const length = varintLength(value);
  if (length === 1) {
    buffer[offset] = value;
  } else if (length === 2) {
    buffer[offset] = 0x40 | (value >>> 8);
    buffer[offset + 1] = value & 0xff;
  } else if (length === 4) {
    buffer[offset] = 0x80 | (value >>> 24);
    buffer[offset + 1] = (value >>> 16) & 0xff;
    buffer[offset + 2] = (value >>> 8) & 0xff;
    buffer[offset + 3] = value & 0xff;
  } else {
    const high = Math.floor(value / 0x100000000);
    const low = value >>> 0;
    buffer[offset] = 0xc0 | (high >>> 24);
    buffer[offset + 1] = (high >>> 16) & 0xff;
    buffer[offset + 2] = (high >>> 8) & 0xff;
    buffer[offset + 3] = high & 0xff;
    buffer[offset + 4] = low >>> 24;
    buffer[offset + 5] = (low >>> 16) & 0xff;
    buffer[offset + 6] = (low >>> 8) & 0xff;
    buffer[offset + 7] = low & 0xff;
  }
  return offset + length;
}

/** Reads a varint at `offset`: [value, offset after it], or undefined if the bytes end first. */
export function readVarint(buffer: Uint8Array, offset: number): [number, number] | undefined {
  if (offset >= buffer.length) return undefined;
  const first = buffer[offset]!;
  const length = 1 << (first >>> 6);
  if (offset + length > buffer.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + buffer[offset + i]!;
  return [value, offset + length];
}

/** The capsule header (type, length, context id 0) for a datagram of `payloadLength` bytes. */
export function datagramCapsuleHeader(payloadLength: number): Buffer {
  const capsuleLength = 1 + payloadLength;
  const header = Buffer.allocUnsafe(1 + varintLength(capsuleLength) + 1);
  let at = writeVarint(header, 0, DATAGRAM_CAPSULE_TYPE);
  at = writeVarint(header, at, capsuleLength);
  header[at] = 0;
  return header;
}

/** One DATAGRAM capsule carrying `payload`, as a single buffer. */
export function encodeDatagramCapsule(payload: Uint8Array): Buffer {
  const header = datagramCapsuleHeader(payload.length);
  const out = Buffer.allocUnsafe(header.length + payload.length);
  header.copy(out, 0);
  out.set(payload, header.length);
  return out;
}

/**
 * Splits a capsule byte stream, arriving in arbitrary chunks, into datagram payloads. Unknown capsule types and
 * datagrams with a context id other than 0 are skipped, as RFC 9297 §3.2 and RFC 9298 §4 require.
 */
export class CapsuleDecoder {
  /** Chunks of the capsule not yet complete; joined only once it is, so tiny chunks cost no copying each. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the first pending capsule needs in all, once its header was read; 0 until then. */
  private needed = 0;

  constructor(private readonly onDatagram: (payload: Buffer) => void) {}

  /** Throws CapsuleError when a capsule is longer than MAX_CAPSULE_LENGTH. */
  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.needed) return;
    const data = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    let at = 0;
    this.needed = 0;
    for (;;) {
      const type = readVarint(data, at);
      if (type === undefined) break;
      const length = readVarint(data, type[1]);
      if (length === undefined) break;
      if (length[0] > MAX_CAPSULE_LENGTH) {
        throw new CapsuleError(`a capsule of ${length[0]} bytes is longer than any UDP datagram`);
      }
      const end = length[1] + length[0];
      if (end > data.length) {
        this.needed = end - at;
        break;
      }
      if (type[0] === DATAGRAM_CAPSULE_TYPE) {
        const context = readVarint(data, length[1]);
        if (context !== undefined && context[0] === 0 && context[1] <= end) {
          this.onDatagram(data.subarray(context[1], end));
        }
      }
      at = end;
    }
    // Keep only the unfinished capsule; a copy so the chunk it came from can be freed.
    const rest = data.subarray(at);
    this.pending = rest.length === 0 ? [] : [Buffer.from(rest)];
    this.pendingBytes = rest.length;
  }
}
