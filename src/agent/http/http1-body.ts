// Where an HTTP/1.x message body ends (RFC 9112 §6), found without decoding it: the bytes go through unchanged and
// this only counts them. Chunk-size lines and trailers are bounded; the data is never held.

import { HttpHeadError, headerTokens, type HeaderField } from './http1-head.js';

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

const CHUNK_LINE_LIMIT = 4096;
const TRAILER_LIMIT = 64 * 1024;
/** 12 hex digits (256 TiB): far past any real chunk, and exact as a JavaScript number. */
const CHUNK_SIZE_DIGITS = 12;

function contentLength(headers: readonly HeaderField[]): number | undefined {
  const values = headers.filter(([n]) => n === 'content-length').flatMap(([, v]) => v.split(',').map((x) => x.trim()));
  if (values.length === 0) return undefined;
  if (values.some((v) => !/^[0-9]{1,15}$/.test(v)) || new Set(values.map(Number)).size !== 1) {
    throw new HttpHeadError('an invalid or conflicting Content-Length', 400);
  }
  return Number(values[0]);
}

/** A request's body framing; throws HttpHeadError 400 for framing a server could read differently. */
export function requestFraming(headers: readonly HeaderField[]): BodyFraming {
  const codings = headerTokens(headers, 'transfer-encoding');
  const length = contentLength(headers);
  if (codings.length > 0) {
    if (length !== undefined) throw new HttpHeadError('both Transfer-Encoding and Content-Length', 400);
    if (codings[codings.length - 1] !== 'chunked') throw new HttpHeadError('a request Transfer-Encoding must end with chunked', 400);
    return { kind: 'chunked' };
  }
  return length === undefined || length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/** A response's body framing (RFC 9112 §6.3); `method` is the request's. Throws HttpHeadError on a bad length. */
export function responseFraming(status: number, headers: readonly HeaderField[], method: string): BodyFraming {
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { kind: 'none' };
  const codings = headerTokens(headers, 'transfer-encoding');
  if (codings.length > 0) return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  const length = contentLength(headers);
  if (length === undefined) return { kind: 'close' };
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

type ChunkState = 'size' | 'extension' | 'sizeLf' | 'data' | 'dataCr' | 'dataLf' | 'trailerStart' | 'trailer' | 'trailerLf' | 'endLf' | 'done';

/** Counts a body's bytes through its framing; `consume` says how many bytes of a chunk are still this body's. */
export class BodyScanner {
  private remaining = 0;
  private state: ChunkState;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;

  constructor(private readonly framing: BodyFraming) {
    if (framing.kind === 'length') this.remaining = framing.length;
    this.state = framing.kind === 'none' ? 'done' : framing.kind === 'chunked' ? 'size' : 'data';
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** How many leading bytes of `chunk` belong to the body. Throws HttpHeadError on malformed chunked framing. */
  consume(chunk: Buffer): number {
    if (this.framing.kind === 'close') return chunk.length;
    let i = 0;
    while (i < chunk.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, chunk.length - i);
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = this.framing.kind === 'length' ? 'done' : 'dataCr';
      } else {
        this.step(chunk[i]!);
        i++;
      }
    }
    return i;
  }

  private fail(what: string): never {
    throw new HttpHeadError(`malformed chunked body: ${what}`, 400);
  }

  private step(byte: number): void {
    switch (this.state) {
      case 'size': {
        const digit = hexValue(byte);
        if (digit >= 0) {
          if (++this.digits > CHUNK_SIZE_DIGITS) this.fail('the chunk size is too large');
          this.remaining = this.remaining * 16 + digit;
        } else if (this.digits === 0) this.fail('no chunk size');
        else if (byte === 0x0d) this.state = 'sizeLf';
        else if (byte === 0x3b || byte === 0x20 || byte === 0x09) this.state = 'extension';
        else this.fail('a bad character in the chunk size');
        this.lineBytes++;
        return;
      }
      case 'extension':
        if (++this.lineBytes > CHUNK_LINE_LIMIT) this.fail('the chunk extension is too long');
        if (byte === 0x0d) this.state = 'sizeLf';
        else if (byte === 0x0a) this.fail('a bare LF');
        return;
      case 'sizeLf':
        this.expect(byte, 0x0a, this.remaining === 0 ? 'trailerStart' : 'data', 'CR without LF after the chunk size');
        this.digits = 0;
        this.lineBytes = 0;
        return;
      case 'dataCr':
        return this.expect(byte, 0x0d, 'dataLf', 'no CRLF after the chunk data');
      case 'dataLf':
        return this.expect(byte, 0x0a, 'size', 'no CRLF after the chunk data');
      case 'trailerStart':
      case 'trailer':
        if (++this.trailerBytes > TRAILER_LIMIT) this.fail('the trailer section is too large');
        if (byte === 0x0d) this.state = this.state === 'trailerStart' ? 'endLf' : 'trailerLf';
        else if (byte === 0x0a) this.fail('a bare LF in the trailers');
        else this.state = 'trailer';
        return;
      case 'trailerLf':
        return this.expect(byte, 0x0a, 'trailerStart', 'CR without LF in the trailers');
      case 'endLf':
        return this.expect(byte, 0x0a, 'done', 'CR without LF at the end');
      default:
        return;
    }
  }

  /** A byte the framing requires here, then the next state. */
  private expect(byte: number, want: number, next: ChunkState, what: string): void {
    if (byte !== want) this.fail(what);
    this.state = next;
  }
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}
