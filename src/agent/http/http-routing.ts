// The traffic agent's HTTP routing for personal intercepts and wiretaps: one accepted connection is sniffed and
// served as HTTP/1.x (per request) or HTTP/2 prior knowledge (per stream); anything else goes to the app
// unchanged. The agent supplies where things go through HttpRoutingHooks.

import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { CompiledFilter } from './http-filter.js';
import type { Logger } from '../../log/logger.js';
import { ByteReader, splice } from './byte-reader.js';
import { serveHttp1 } from './http1-router.js';
import { serveHttp2 } from './http2-router.js';

export interface PersonalRoute {
  id: string;
  filter: CompiledFilter;
}

export interface HttpRoutingHooks {
  /** The port's personal intercepts now (read for every request/stream: they change while a connection lives). */
  personal(): readonly PersonalRoute[];
  /** The port's wiretap intercept ids now. */
  wiretaps(): readonly string[];
  /** A new connection to the app container (127.0.0.1:containerPort). */
  openApp(): Promise<Duplex>;
  /** A new byte stream to the intercepting client's local server, through the manager; rejects with
   *  InterceptDialError when the client could not take it. `mirror`: a wiretap copy (its answer is discarded). */
  openIntercept(id: string, mirror: boolean): Promise<Duplex>;
  /** Called once per request/stream sent to intercept `id` (status counts). */
  counted(id: string): void;
}

export class InterceptDialError extends Error {
  override readonly name = 'InterceptDialError';
  constructor(
    message: string,
    readonly status: 502 | 504,
  ) {
    super(message);
  }
}

const DEFAULT_SNIFF_MS = 1000;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Longer than any method we would see; a first "word" longer than this is not HTTP/1. */
const METHOD_LIMIT = 24;
const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

export type Sniffed = 'h1' | 'h2' | 'other' | 'more';

/** What the first bytes of a connection are: the HTTP/2 preface, an HTTP/1 request line's method, or neither. */
export function sniffProtocol(bytes: Buffer): Sniffed {
  const n = Math.min(bytes.length, H2_PREFACE.length);
  if (bytes.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return bytes.length >= H2_PREFACE.length ? 'h2' : 'more';
  // Leading empty lines are allowed before a request line (RFC 9112 §2.2).
  let i = 0;
  while (i < bytes.length && i < 4 && (bytes[i] === 0x0d || bytes[i] === 0x0a)) i++;
  const start = i;
  for (; i < bytes.length && i - start <= METHOD_LIMIT; i++) {
    if (bytes[i] === 0x20) return i > start ? 'h1' : 'other';
    if (!TOKEN_CHAR.test(String.fromCharCode(bytes[i]!))) return 'other';
  }
  return i - start > METHOD_LIMIT ? 'other' : 'more';
}

/** Serves one accepted connection of a port with personal intercepts or wiretaps: sniffs HTTP/1.x vs HTTP/2 prior
 *  knowledge; anything else (or nothing sent within sniffMs, default 1000: server-speaks-first protocols) is spliced
 *  to the app unchanged, including the bytes already read. Never throws; closes both sides when done. */
export function routeHttpConnection(socket: Socket, hooks: HttpRoutingHooks, log: Logger, options?: { sniffMs?: number }): void {
  // A client may send its requests and then shut its side (like Node's own HTTP server, we still answer them all);
  // the connection is closed by us once the last answer is out.
  socket.allowHalfOpen = true;
  const reader = new ByteReader(socket);
  sniff(reader, options?.sniffMs ?? DEFAULT_SNIFF_MS)
    .then(async ({ kind, bytes }) => {
      if (kind === 'h1') {
        reader.unshift(bytes);
        await serveHttp1(reader, hooks, log);
      } else if (kind === 'h2') {
        reader.detach();
        socket.unshift(bytes);
        serveHttp2(socket, hooks, log);
      } else if (bytes.length > 0 || !reader.done) {
        const app = await hooks.openApp();
        splice(socket, Buffer.concat([bytes, reader.detach()]), app, Buffer.alloc(0));
      } else socket.destroy();
    })
    .catch((error: unknown) => {
      log.debug('intercepted connection failed', { error: (error as Error).message });
      socket.destroy();
    });
}

async function sniff(reader: ByteReader, sniffMs: number): Promise<{ kind: Sniffed; bytes: Buffer }> {
  const deadline = Date.now() + sniffMs;
  let bytes: Buffer = Buffer.alloc(0);
  for (;;) {
    const chunk = await reader.readWithin(Math.max(0, deadline - Date.now()));
    if (chunk === null || chunk === 'timeout') return { kind: 'other', bytes };
    bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
    const kind = sniffProtocol(bytes);
    if (kind !== 'more') return { kind, bytes };
  }
}
