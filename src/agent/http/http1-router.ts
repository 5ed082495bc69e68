// HTTP/1.x personal routing: one request at a time (so responses go back in request order), each to the first
// personal intercept whose filter matches, else to the app. Each destination keeps one upstream connection for as
// long as it stays reusable. Requests and responses pass byte for byte; only the framing is read.

import type { Duplex } from 'node:stream';
import type { Logger } from '../../log/logger.js';
import { matchRequest } from './http-filter.js';
import { InterceptDialError, type HttpRoutingHooks, type PersonalRoute } from './http-routing.js';
import { ByteReader, StreamClosedError, splice, writeAll } from './byte-reader.js';
import {
  HeadCollector,
  HttpHeadError,
  parseRequestHead,
  parseResponseHead,
  wantsClose,
  withoutH2cUpgrade,
  type RequestHeadBytes,
  type ResponseHeadBytes,
} from './http1-head.js';
import { BodyScanner, requestFraming, responseFraming, type BodyFraming } from './http1-body.js';
import { WiretapCopy } from './wiretap-copy.js';

const APP = '';

interface Upstream {
  key: string;
  reader: ByteReader;
  /** Whether it carried an exchange already (a reused connection the server may have closed meanwhile). */
  used: boolean;
}

type Outcome = 'keep' | 'close' | 'upgrade';

/** How long a closing connection may take to deliver its last response before it is cut. */
const CLOSE_GRACE_MS = 10_000;

/** Ends a stream after its buffered bytes are delivered (an error response, a close-delimited body). */
function closeGracefully(stream: Duplex): void {
  const timer = setTimeout(() => stream.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
  stream.once('finish', () => stream.destroy());
  stream.end();
}

/** The server closed before any byte of a response. */
class NoResponseError extends Error {}

/** Reads one head; null when the stream ends cleanly before its first byte. */
async function readHead(reader: ByteReader, collector: HeadCollector): Promise<Buffer | null> {
  let any = false;
  while (!collector.complete) {
    const chunk = await reader.read();
    if (chunk === null) {
      if (!any) return null;
      throw new StreamClosedError('the peer closed in the middle of a message head');
    }
    any = true;
    const used = collector.push(chunk);
    reader.unshift(chunk.subarray(used));
  }
  return collector.bytes();
}

/** Moves one body from `from` to `to`, byte for byte, handing each piece to `copy` too. */
async function relayBody(from: ByteReader, to: Duplex, framing: BodyFraming, copy?: (chunk: Buffer) => void): Promise<void> {
  const scanner = new BodyScanner(framing);
  while (!scanner.done) {
    const chunk = await from.read();
    if (chunk === null) {
      if (framing.kind === 'close') return;
      throw new StreamClosedError('the peer closed in the middle of a body');
    }
    const used = scanner.consume(chunk);
    from.unshift(chunk.subarray(used));
    const part = chunk.subarray(0, used);
    copy?.(part);
    await writeAll(to, part);
  }
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 414: 'URI Too Long', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 504: 'Gateway Timeout' };

/** A complete error response that ends the connection. */
function errorResponse(status: number, text: string): Buffer {
  const body = Buffer.from(`${text}\n`, 'utf8');
  const head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

class Http1Connection {
  private readonly upstreams = new Map<string, Upstream>();
  private readonly taps = new Map<string, WiretapCopy>();
  /** Set when an upgrade handed the client's socket to a splice. */
  private handedOff = false;

  constructor(
    private readonly client: ByteReader,
    private readonly hooks: HttpRoutingHooks,
    private readonly log: Logger,
  ) {}

  async run(): Promise<void> {
    // A client gone while a destination is still thinking: the wait for its answer ends with its connection.
    this.client.stream.once('close', () => {
      if (!this.handedOff) for (const upstream of this.upstreams.values()) upstream.reader.stream.destroy();
    });
    try {
      while (await this.exchange());
    } catch (error) {
      this.log.debug('intercepted HTTP/1 connection failed', { error: (error as Error).message });
    } finally {
      if (!this.handedOff) closeGracefully(this.client.stream);
      for (const upstream of this.upstreams.values()) upstream.reader.stream.destroy();
      for (const tap of this.taps.values()) tap.close();
    }
  }

  /** One request and its response; false when the connection is over (or handed to an upgrade). */
  private async exchange(): Promise<boolean> {
    let head: RequestHeadBytes;
    let framing: BodyFraming;
    try {
      const raw = await readHead(this.client, new HeadCollector(414));
      if (raw === null) return false;
      head = parseRequestHead(raw);
      framing = requestFraming(head.headers);
    } catch (error) {
      if (!(error instanceof HttpHeadError)) throw error;
      await this.answer(error.status, `kubetun agent: ${error.message}`);
      return false;
    }
    const route = this.choose(head);
    const key = route?.id ?? APP;
    const whose = route === undefined ? 'the app container' : `intercept ${route.id}`;
    const bytes = withoutH2cUpgrade(head);
    let upstream: Upstream;
    try {
      upstream = await this.upstream(key);
    } catch (error) {
      const status = error instanceof InterceptDialError ? error.status : 502;
      await this.answer(status, `kubetun agent: ${whose} could not take the request: ${(error as Error).message}`);
      return false;
    }
    if (route !== undefined) this.hooks.counted(route.id);
    const taps = this.tapsNow();
    for (const tap of taps) tap.write(bytes);
    const copy = taps.length === 0 ? undefined : (chunk: Buffer): void => taps.forEach((tap) => tap.write(chunk));

    let result: { outcome: Outcome; body: Promise<void> };
    try {
      result = await this.forward(upstream, head, bytes, framing, copy);
    } catch (error) {
      if (!(error instanceof NoResponseError)) throw error;
      this.drop(upstream);
      // A reused connection the server closed while idle: a bodiless request is sent again on a fresh one.
      if (!upstream.used || framing.kind !== 'none') return this.noAnswer(whose);
      try {
        upstream = await this.upstream(key);
        result = await this.forward(upstream, head, bytes, framing, copy);
      } catch {
        return this.noAnswer(whose);
      }
    }
    upstream.used = true;
    if (result.outcome === 'close') return false;
    await result.body;
    if (result.outcome === 'upgrade') {
      this.upstreams.delete(key);
      this.handedOff = true;
      splice(this.client.stream, this.client.detach(), upstream.reader.stream, upstream.reader.detach());
      return false;
    }
    return !wantsClose(head.minor, head.headers);
  }

  /** Sends the request head, streams its body, and relays the response. */
  private async forward(upstream: Upstream, head: RequestHeadBytes, bytes: Buffer, framing: BodyFraming, copy?: (chunk: Buffer) => void): Promise<{ outcome: Outcome; body: Promise<void> }> {
    try {
      await writeAll(upstream.reader.stream, bytes);
    } catch {
      throw new NoResponseError('the server closed the connection');
    }
    const body = relayBody(this.client, upstream.reader.stream, framing, copy);
    // A request body cut short (client gone, malformed chunks) ends the exchange: the server would wait forever.
    body.catch(() => this.drop(upstream));
    return { outcome: await this.relayResponse(upstream, head), body };
  }

  private async noAnswer(whose: string): Promise<false> {
    await this.answer(502, `kubetun agent: ${whose} closed the connection without answering`);
    return false;
  }

  private drop(upstream: Upstream): void {
    if (this.upstreams.get(upstream.key) === upstream) this.upstreams.delete(upstream.key);
    upstream.reader.stream.destroy();
  }

  private choose(head: RequestHeadBytes): PersonalRoute | undefined {
    const request = { path: head.target, headers: head.headers };
    return this.hooks.personal().find((route) => matchRequest(route.filter, request));
  }

  private async upstream(key: string): Promise<Upstream> {
    const known = this.upstreams.get(key);
    if (known !== undefined && !known.reader.done && !known.reader.stream.writableEnded) return known;
    if (known !== undefined) known.reader.stream.destroy();
    const stream = key === APP ? await this.hooks.openApp() : await this.hooks.openIntercept(key, false);
    if (this.client.stream.destroyed) {
      stream.destroy();
      throw new StreamClosedError('the client left while its destination was being opened');
    }
    const upstream = { key, reader: new ByteReader(stream), used: false };
    this.upstreams.set(key, upstream);
    return upstream;
  }

  /** Relays interim responses and the final one; says what becomes of the connection. */
  private async relayResponse(upstream: Upstream, request: RequestHeadBytes): Promise<Outcome> {
    let first = true;
    for (;;) {
      let head: ResponseHeadBytes;
      let framing: BodyFraming;
      try {
        const raw = await readHead(upstream.reader, new HeadCollector(400));
        if (raw === null) {
          if (first) throw new NoResponseError('the server closed without answering');
          throw new StreamClosedError('the server closed without answering');
        }
        head = parseResponseHead(raw);
        framing = responseFraming(head.status, head.headers, request.method);
      } catch (error) {
        if (!first || !(error instanceof HttpHeadError)) throw error;
        await this.answer(502, `kubetun agent: the server's answer is not HTTP/1.x: ${error.message}`);
        return 'close';
      }
      await writeAll(this.client.stream, head.raw);
      first = false;
      if (head.status === 101 || (request.method === 'CONNECT' && head.status >= 200 && head.status < 300)) return 'upgrade';
      if (head.status < 200) continue;
      await relayBody(upstream.reader, this.client.stream, framing);
      if (framing.kind === 'close' || wantsClose(head.minor, head.headers)) this.drop(upstream);
      return framing.kind === 'close' ? 'close' : 'keep';
    }
  }

  /** The wiretap copies for this request: one stream per wiretap for the connection's life. */
  private tapsNow(): WiretapCopy[] {
    const ids = this.hooks.wiretaps();
    for (const [id, tap] of this.taps) {
      if (!ids.includes(id)) {
        tap.close();
        this.taps.delete(id);
      }
    }
    const taps: WiretapCopy[] = [];
    for (const id of ids) {
      let tap = this.taps.get(id);
      if (tap === undefined) {
        const open = this.hooks.openIntercept(id, true).then((stream) => {
          stream.resume();
          return stream;
        });
        tap = new WiretapCopy(open, (reason) => this.log.debug('wiretap copy dropped', { intercept: id, reason }));
        this.taps.set(id, tap);
      }
      if (tap.dropped) continue;
      this.hooks.counted(id);
      taps.push(tap);
    }
    return taps;
  }

  /** Answers the request itself (bad request, unreachable destination) and ends the connection. */
  private async answer(status: number, text: string): Promise<void> {
    await writeAll(this.client.stream, errorResponse(status, text)).catch(() => undefined);
  }
}

/** Serves an HTTP/1.x connection whose first bytes are in `client`; resolves when both sides are closed or spliced. */
export async function serveHttp1(client: ByteReader, hooks: HttpRoutingHooks, log: Logger): Promise<void> {
  await new Http1Connection(client, hooks, log).run();
}
