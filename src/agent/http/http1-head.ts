// HTTP/1.x message heads (RFC 9112 §2-5), read incrementally and bounded: the bytes are kept as they arrived (a
// request is forwarded unchanged) and parsed once the empty line is seen. Anything ambiguous between us and the
// server behind us (bare CR/LF, obsolete line folding, whitespace before the colon) is refused, so the two can never
// disagree on where a message ends (request smuggling).

/** RFC 9112 limits we enforce; what a request's head may hold. */
export const START_LINE_LIMIT = 8 * 1024;
export const HEADER_BYTES_LIMIT = 64 * 1024;
export const HEADER_FIELDS_LIMIT = 100;

export class HttpHeadError extends Error {
  override readonly name = 'HttpHeadError';
  /** The status to answer the request with (400, 414, 431). */
  constructor(message: string, readonly status: 400 | 414 | 431) {
    super(message);
  }
}

export type HeaderField = readonly [name: string, value: string];

export interface RequestHeadBytes {
  method: string;
  target: string;
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  minor: number;
  /** Names lower-cased, values without surrounding whitespace, in order. */
  headers: HeaderField[];
  /** The head as it arrived (leading empty lines dropped), up to and including the empty line. */
  raw: Buffer;
}

export interface ResponseHeadBytes {
  status: number;
  minor: number;
  headers: HeaderField[];
  raw: Buffer;
}

const CR = 0x0d;
const LF = 0x0a;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e\x80-\xff]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
/** Field values: visible characters, spaces, tabs and obs-text; no controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Collects one head from chunks. `push` returns how many bytes of the chunk it took: the whole chunk while the
 * head is incomplete, or the bytes up to the end of the head (then `complete` is true).
 */
export class HeadCollector {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  /** How far the "\r\n\r\n" at the end of the head is matched. */
  private matched = 0;
  private started = false;
  /** The first line's length once its end was seen. */
  private firstLine = -1;
  private skipped = 0;
  complete = false;

  /** `startLineStatus`: what a too-long first line answers (414 for a request's target). */
  constructor(private readonly startLineStatus: 400 | 414 = 414) {}

  push(chunk: Buffer): number {
    let i = 0;
    // Leading empty lines before a request line are ignored (RFC 9112 §2.2), bounded like the line itself.
    while (!this.started && i < chunk.length && (chunk[i] === CR || chunk[i] === LF)) {
      i++;
      if (++this.skipped > START_LINE_LIMIT) throw new HttpHeadError('too many empty lines before the request', 400);
    }
    if (i < chunk.length) this.started = true;
    const from = i;
    for (; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === CR) this.matched = this.matched === 2 ? 3 : 1;
      else if (byte === LF && (this.matched === 1 || this.matched === 3)) {
        this.matched++;
        if (this.firstLine < 0) this.firstLine = this.length + (i - from) + 1;
      } else this.matched = 0;
      const total = this.length + (i - from) + 1;
      if (this.firstLine < 0) {
        if (total > START_LINE_LIMIT) throw new HttpHeadError(`the first line is longer than ${START_LINE_LIMIT} bytes`, this.startLineStatus);
      } else if (total - this.firstLine > HEADER_BYTES_LIMIT) {
        throw new HttpHeadError(`the header section is larger than ${HEADER_BYTES_LIMIT} bytes`, 431);
      }
      if (this.matched === 4) {
        this.complete = true;
        i++;
        break;
      }
    }
    if (i > from) {
      this.chunks.push(chunk.subarray(from, i));
      this.length += i - from;
    }
    return i;
  }

  /** The head's bytes; only once complete. */
  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
  }
}

/** Splits a complete head into its first line and checked header fields. */
function splitHead(raw: Buffer): { first: string; headers: HeaderField[] } {
  const lines = raw.toString('latin1').slice(0, -4).split('\r\n');
  const first = lines[0]!;
  const fields = lines.slice(1);
  if (fields.length > HEADER_FIELDS_LIMIT) throw new HttpHeadError(`more than ${HEADER_FIELDS_LIMIT} header fields`, 431);
  const headers: HeaderField[] = [];
  for (const line of [first, ...fields]) {
    if (line.includes('\r') || line.includes('\n')) throw new HttpHeadError('a bare CR or LF in the head', 400);
  }
  for (const line of fields) {
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpHeadError(`a malformed header line: ${JSON.stringify(line.slice(0, 40))}`, 400);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new HttpHeadError(`header ${name}: control characters in the value`, 400);
    headers.push([name.toLowerCase(), value]);
  }
  return { first, headers };
}

export function parseRequestHead(raw: Buffer): RequestHeadBytes {
  const { first, headers } = splitHead(raw);
  const line = REQUEST_LINE.exec(first);
  if (line === null) throw new HttpHeadError(`not an HTTP/1.x request line: ${JSON.stringify(first.slice(0, 40))}`, 400);
  return { method: line[1]!, target: line[2]!, minor: Number(line[3]), headers, raw };
}

/** Throws HttpHeadError (status 400) when the server's head is malformed: the caller answers 502. */
export function parseResponseHead(raw: Buffer): ResponseHeadBytes {
  const { first, headers } = splitHead(raw);
  const line = STATUS_LINE.exec(first);
  if (line === null) throw new HttpHeadError(`not an HTTP/1.x status line: ${JSON.stringify(first.slice(0, 40))}`, 400);
  return { status: Number(line[2]), minor: Number(line[1]), headers, raw };
}

/** The comma-separated tokens of every field named `name`, lower-cased. */
export function headerTokens(headers: readonly HeaderField[], name: string): string[] {
  const tokens: string[] = [];
  for (const [n, v] of headers) {
    if (n !== name) continue;
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token !== '') tokens.push(token);
    }
  }
  return tokens;
}

/** Whether the connection ends after this message: `Connection: close`, or HTTP/1.0 without keep-alive. */
export function wantsClose(minor: number, headers: readonly HeaderField[]): boolean {
  const connection = headerTokens(headers, 'connection');
  if (connection.includes('close')) return true;
  return minor === 0 && !connection.includes('keep-alive');
}

/**
 * Removes an `Upgrade: h2c` offer (RFC 7540 §3.2, deprecated by RFC 9113 §3.1; a server may ignore an upgrade, RFC
 * 9110 §7.8): the h2c token, HTTP2-Settings, and their Connection tokens, so the exchange continues as HTTP/1.1.
 * Accepting it would mean answering 101 and serving the request as stream 1, which node:http2 cannot be handed.
 * Other fields keep their bytes. Returns the head unchanged when it offers no h2c.
 */
export function withoutH2cUpgrade(head: RequestHeadBytes): Buffer {
  if (!headerTokens(head.headers, 'upgrade').includes('h2c')) return head.raw;
  const upgrades = headerTokens(head.headers, 'upgrade').filter((t) => t !== 'h2c');
  const drop = new Set(['http2-settings', ...(upgrades.length === 0 ? ['upgrade'] : [])]);
  const lines = head.raw.toString('latin1').slice(0, -4).split('\r\n');
  const kept = [lines[0]!];
  let upgradeKept = false;
  for (const line of lines.slice(1)) {
    const name = line.slice(0, line.indexOf(':')).toLowerCase();
    if (name === 'http2-settings') continue;
    if (name === 'upgrade') {
      if (upgrades.length > 0 && !upgradeKept) kept.push(`${line.slice(0, line.indexOf(':'))}: ${upgrades.join(', ')}`);
      upgradeKept = true;
      continue;
    }
    if (name === 'connection') {
      const tokens = line.slice(line.indexOf(':') + 1).split(',').map((t) => t.trim()).filter((t) => t !== '' && !drop.has(t.toLowerCase()));
      if (tokens.length > 0) kept.push(`${line.slice(0, line.indexOf(':'))}: ${tokens.join(', ')}`);
      continue;
    }
    kept.push(line);
  }
  return Buffer.from(`${kept.join('\r\n')}\r\n\r\n`, 'latin1');
}
