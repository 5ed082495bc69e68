// HTTP/2 (prior knowledge) personal routing: the inbound connection is served by a node:http2 server session and
// each stream goes, by its headers, to the first matching personal intercept or to the app, over one h2c client
// session per destination for the connection's life. Bodies are piped (flow control end to end), trailers and
// stream resets are passed on. Wiretaps get each stream as an h2 stream of their own, answer discarded.

import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '../../log/logger.js';
import { matchRequest, type RequestHead } from './http-filter.js';
import { InterceptDialError, type HttpRoutingHooks } from './http-routing.js';
import { HEADER_BYTES_LIMIT } from './http1-head.js';
import { WiretapCopy } from './wiretap-copy.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;
const APP = '';
/** Streams one cluster client may have open at once on one connection (each holds a stream to a destination). */
const MAX_STREAMS = 256;

/** The regular header fields, for matching: one entry per value, as an HTTP/1 request would list them. */
function requestHeadOf(headers: IncomingHttpHeaders): RequestHead {
  const fields: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) fields.push([name, String(v)]);
  }
  return { path: String(headers[':path'] ?? ''), headers: fields };
}

/** Headers to send on: everything node parsed, without its bookkeeping symbol. */
function outgoing(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return { ...headers };
}

class Http2Connection {
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>();
  private readonly droppedTaps = new Set<string>();

  constructor(
    private readonly hooks: HttpRoutingHooks,
    private readonly log: Logger,
  ) {}

  route(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const head = requestHeadOf(headers);
    const route = this.hooks.personal().find((r) => matchRequest(r.filter, head));
    const key = route?.id ?? APP;
    this.mirror(stream, headers);
    // Trailers are events, not data: they can arrive while the destination's session is still being opened.
    const trailers: { request: IncomingHttpHeaders } = { request: {} };
    stream.on('trailers', (t: IncomingHttpHeaders) => (trailers.request = t));
    this.session(key).then(
      (session) => {
        if (route !== undefined) this.hooks.counted(route.id);
        this.forward(stream, headers, trailers, session);
      },
      (error: unknown) => {
        const status = error instanceof InterceptDialError ? error.status : 502;
        const whose = route === undefined ? 'the app container' : `intercept ${route.id}`;
        answer(stream, status, `kubetun agent: ${whose} could not take the request: ${(error as Error).message}`);
      },
    );
  }

  close(): void {
    for (const session of this.sessions.values()) session.then((s) => s.destroy(), () => undefined);
    this.sessions.clear();
  }

  /** One h2c session per destination, opened on first use and again if it closed. */
  private session(key: string, mirror = false): Promise<ClientHttp2Session> {
    const mapKey = mirror ? `mirror:${key}` : key;
    const known = this.sessions.get(mapKey);
    if (known !== undefined) return known;
    const opening = (key === APP ? this.hooks.openApp() : this.hooks.openIntercept(key, mirror)).then((duplex) => {
      const session = http2.connect('http://localhost', { createConnection: () => duplex as Socket, maxHeaderListPairs: 128 });
      session.on('error', () => undefined);
      session.on('close', () => {
        if (this.sessions.get(mapKey) === opening) this.sessions.delete(mapKey);
      });
      return session;
    });
    opening.catch(() => {
      if (this.sessions.get(mapKey) === opening) this.sessions.delete(mapKey);
    });
    this.sessions.set(mapKey, opening);
    return opening;
  }

  private forward(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, trailers: { request: IncomingHttpHeaders }, session: ClientHttp2Session): void {
    if (stream.destroyed) return;
    const ended = stream.readableEnded || stream.endAfterHeaders;
    let out: ClientHttp2Stream;
    try {
      out = session.request(outgoing(headers), { endStream: ended, waitForTrailers: !ended });
    } catch (error) {
      answer(stream, 502, `kubetun agent: the destination's connection failed: ${(error as Error).message}`);
      return;
    }
    out.on('error', () => undefined);
    out.on('wantTrailers', () => out.sendTrailers(outgoing(trailers.request)));
    if (!ended) stream.pipe(out);

    out.on('headers', (interim: IncomingHttpHeaders) => {
      if (!stream.headersSent) stream.additionalHeaders(outgoing(interim));
    });
    let responseTrailers: IncomingHttpHeaders = {};
    out.on('trailers', (t: IncomingHttpHeaders) => (responseTrailers = t));
    stream.on('wantTrailers', () => stream.sendTrailers(outgoing(responseTrailers)));
    out.on('response', (response: IncomingHttpHeaders, flags: number) => {
      if (stream.destroyed) return;
      const done = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      stream.respond(outgoing(response), { endStream: done, waitForTrailers: !done });
      if (!done) out.pipe(stream);
    });
    // A reset on either side resets the other; a destination gone before answering is a 502.
    stream.on('close', () => {
      if (!out.closed) out.close(stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR ? stream.rstCode : NGHTTP2_CANCEL);
    });
    out.on('close', () => {
      if (stream.closed) return;
      if (out.rstCode !== undefined && out.rstCode !== NGHTTP2_NO_ERROR) stream.close(out.rstCode);
      else if (!stream.headersSent) answer(stream, 502, 'kubetun agent: the destination closed the stream without answering');
      else if (!stream.writableEnded) stream.close(NGHTTP2_INTERNAL_ERROR);
    });
  }

  /** A copy of the stream to each wiretap, bounded; a wiretap that cannot keep up loses its copy. */
  private mirror(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // Paused: the copies' 'data' listeners must not start the flow before the real destination's pipe does.
    stream.pause();
    for (const id of this.hooks.wiretaps()) {
      if (this.droppedTaps.has(id)) continue;
      this.hooks.counted(id);
      const ended = stream.readableEnded || stream.endAfterHeaders;
      const open = this.session(id, true).then((session) => {
        const copy = session.request(outgoing(headers), { endStream: ended });
        copy.resume();
        return copy;
      });
      const tap = new WiretapCopy(open, (reason) => {
        if (!this.droppedTaps.has(id)) this.log.debug('wiretap copy dropped', { intercept: id, reason });
        this.droppedTaps.add(id);
      });
      if (ended) continue;
      stream.on('data', (chunk: Buffer) => tap.write(chunk));
      stream.on('end', () => tap.end());
      stream.on('close', () => {
        if (!stream.readableEnded) tap.close();
      });
    }
  }
}

function answer(stream: ServerHttp2Stream, status: number, text: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  // The request body nobody will take is read and dropped, so the stream can close.
  stream.resume();
  stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
  stream.end(`${text}\n`);
}

/** Serves an HTTP/2 prior-knowledge connection; the preface bytes read while sniffing are already unshifted. */
export function serveHttp2(socket: Socket, hooks: HttpRoutingHooks, log: Logger): void {
  const connection = new Http2Connection(hooks, log);
  const server = http2.createServer({ settings: { maxHeaderListSize: HEADER_BYTES_LIMIT, maxConcurrentStreams: MAX_STREAMS }, maxHeaderListPairs: 128 });
  server.on('stream', (stream, headers) => connection.route(stream, headers));
  server.on('session', (session) => {
    session.on('error', (error: Error) => log.debug('intercepted HTTP/2 connection failed', { error: error.message }));
    session.on('close', () => {
      connection.close();
      socket.destroy();
    });
  });
  server.emit('connection', socket);
}
