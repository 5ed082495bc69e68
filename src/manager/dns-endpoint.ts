// DNS for tunnel clients, resolved with the session's namespace search path, two ways: DNS over HTTP (RFC 8484;
// POST with an application/dns-message body, or GET with `?dns=<base64url>`), a stream per query; and the DNS
// stream (protocol.ts, DNS_STREAM_PATH), many queries on one stream. A body longer than a DNS message is refused
// as soon as it is seen, and a session has a bounded number of queries in flight, whichever way they came.

import { constants as http2constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { DNS_MESSAGE_TYPE, DNS_STREAM_TYPE, ERROR_HEADER, ERROR_MESSAGE_HEADER, SESSION_HEADER, type WireErrorReason } from '../tunnel/protocol.js';
import type { ClusterInfoSource } from './cluster-info-source.js';
import type { DnsExchange } from './cluster-dns-client.js';
import { resolveInCluster } from './cluster-resolver.js';
import { DnsFrameReader, frameDnsMessage } from '../dns/dns-framing.js';
import { DnsFormatError, DnsRcode, headerOnlyReply } from '../dns/dns-message.js';
import type { Logger } from '../log/logger.js';
import { admit, DNS_MESSAGE_MAX_BYTES } from './manager-limits.js';
import type { ClientSession, SessionRegistry } from './session-registry.js';

export interface DnsEndpointDeps {
  sessions: SessionRegistry;
  cluster: ClusterInfoSource;
  exchange: DnsExchange;
  log: Logger;
}

const TOO_LARGE = `A DNS query is at most ${DNS_MESSAGE_MAX_BYTES.toLocaleString('en')} bytes.`;
const NO_SESSION = 'No live session of yours: arrive at the traffic manager and send its id in kubetun-session.';
/**
 * Answer bytes a DNS stream may have queued towards its client before the manager stops reading its queries: a
 * client that does not read its answers stops getting new ones resolved; what it sent waits in its stream window.
 */
export const DNS_STREAM_MAX_QUEUED_BYTES = 0x10000;

function fail(res: Http2ServerResponse, status: number, reason: WireErrorReason | undefined, message: string): void {
  const headers: Record<string, string> = { [ERROR_MESSAGE_HEADER]: message };
  if (reason !== undefined) headers[ERROR_HEADER] = reason;
  res.writeHead(status, headers).end();
}

/** The body, or 'too large' as soon as more than a DNS message has come (or is announced). */
function readBody(req: Http2ServerRequest): Promise<Buffer | 'too large' | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > DNS_MESSAGE_MAX_BYTES) return Promise.resolve('too large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length <= DNS_MESSAGE_MAX_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      resolve('too large');
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks, length)));
    req.on('error', () => resolve(undefined));
    // A stream reset mid-body ends with neither 'end' nor 'error'.
    req.on('close', () => resolve(undefined));
  });
}

async function queryOf(req: Http2ServerRequest): Promise<Buffer | 'too large' | undefined> {
  if (req.method === 'POST') return readBody(req);
  const dns = new URL(req.url, 'http://manager').searchParams.get('dns');
  if (dns === null) return undefined;
  const query = Buffer.from(dns, 'base64url');
  return query.length > DNS_MESSAGE_MAX_BYTES ? 'too large' : query;
}

function ownedSession(req: Http2ServerRequest, deps: DnsEndpointDeps, identity: string): ClientSession | undefined {
  const sessionId = req.headers[SESSION_HEADER];
  return typeof sessionId === 'string' ? deps.sessions.owned(sessionId, identity) : undefined;
}

function resolveForSession(query: Buffer, namespace: string, deps: DnsEndpointDeps): Promise<Buffer> {
  return resolveInCluster(query, {
    namespace: namespace || 'default',
    clusterDomain: deps.cluster.current().facts.clusterDomain,
    exchange: deps.exchange,
  });
}

/** `identity`: who the request was authenticated as; only that identity's sessions serve it. */
export async function serveDnsQuery(req: Http2ServerRequest, res: Http2ServerResponse, deps: DnsEndpointDeps, identity: string): Promise<void> {
  if (req.method !== 'POST' && req.method !== 'GET') {
    fail(res, 405, undefined, 'DNS queries are POST or GET (RFC 8484).');
    return;
  }
  const session = ownedSession(req, deps, identity);
  if (session === undefined) {
    fail(res, 403, 'session', NO_SESSION);
    return;
  }
  const admission = admit(session.allowances.dnsQueries);
  if (!admission.admitted) {
    fail(res, 429, 'limit', admission.message);
    return;
  }
  try {
    await answer(req, res, session.client.namespace, deps);
  } finally {
    admission.release();
  }
}

async function answer(req: Http2ServerRequest, res: Http2ServerResponse, namespace: string, deps: DnsEndpointDeps): Promise<void> {
  const query = await queryOf(req);
  if (query === 'too large') {
    fail(res, 413, undefined, TOO_LARGE);
    // RFC 9113 §8.1: after a complete response, NO_ERROR asks the client to stop sending the rest; what came
    // already is discarded (an unread stream would never close).
    req.resume();
    req.stream.close(http2constants.NGHTTP2_NO_ERROR);
    return;
  }
  if (query === undefined || query.length < 12) {
    fail(res, 400, undefined, 'The request carries no DNS query (a POST body or ?dns=, RFC 8484).');
    return;
  }
  try {
    const answer = await resolveForSession(query, namespace, deps);
    // The length lets the client take the answer without waiting for END_STREAM, which Node sends a turn later.
    res.writeHead(200, { 'content-type': DNS_MESSAGE_TYPE, 'content-length': answer.length, 'cache-control': 'no-store' }).end(answer);
  } catch (error) {
    if (!(error instanceof DnsFormatError)) throw error;
    fail(res, 400, undefined, error.message);
  }
}

/**
 * The DNS stream (protocol.ts): queries framed in the request body, answers framed in the response as each is
 * ready. A query beyond the session's allowance of queries in flight is answered SERVFAIL at once, as one over
 * HTTP gets 429; reading stops while DNS_STREAM_MAX_QUEUED_BYTES of answers wait for the client. A frame too short
 * to carry a message ID cannot be answered: the stream is reset.
 */
export function serveDnsStream(req: Http2ServerRequest, res: Http2ServerResponse, deps: DnsEndpointDeps, identity: string): void {
  if (req.method !== 'POST') {
    fail(res, 405, undefined, 'The DNS stream is a POST.');
    return;
  }
  const session = ownedSession(req, deps, identity);
  if (session === undefined) {
    fail(res, 403, 'session', NO_SESSION);
    return;
  }
  const stream = req.stream;
  stream.respond({ ':status': 200, 'content-type': DNS_STREAM_TYPE, 'cache-control': 'no-store' });
  const frames = new DnsFrameReader();
  const allowance = session.allowances.dnsQueries;
  let inFlight = 0;
  let clientDone = false;
  const hasRoom = (): boolean => stream.writableLength < DNS_STREAM_MAX_QUEUED_BYTES;
  const send = (answer: Buffer): void => {
    if (!stream.closed && stream.writable) stream.write(frameDnsMessage(answer), pump);
  };
  const answer = (query: Buffer): void => {
    const admission = admit(allowance);
    if (!admission.admitted) {
      send(headerOnlyReply(query, DnsRcode.SERVFAIL));
      return;
    }
    inFlight++;
    resolveForSession(query, session.client.namespace, deps)
      .catch((error: unknown) => {
        if (error instanceof DnsFormatError) return headerOnlyReply(query, DnsRcode.FORMERR);
        deps.log.debug('a DNS query on a stream failed', { session: session.tag, error: String(error) });
        return headerOnlyReply(query, DnsRcode.SERVFAIL);
      })
      .then((reply) => {
        admission.release();
        inFlight--;
        send(reply);
        pump();
      })
      .catch((error: unknown) => deps.log.error('answering on a DNS stream failed', { session: session.tag, error: String(error) }));
  };
  // Starts every whole query there is room for, then reads on only if there is room for more.
  const pump = (): void => {
    let query: Buffer | null;
    while (!stream.closed && hasRoom() && (query = frames.next()) !== null) {
      if (query.length < 12) {
        stream.close(http2constants.NGHTTP2_PROTOCOL_ERROR);
        return;
      }
      answer(query);
    }
    if (stream.closed) return;
    if (!hasRoom()) req.pause();
    else if (!clientDone) req.resume();
    // The client ended its side: the stream ends once every query it sent is answered.
    else if (inFlight === 0 && stream.writable) stream.end();
  };
  req.on('data', (chunk: Buffer) => {
    frames.push(chunk);
    pump();
  });
  req.on('end', () => {
    clientDone = true;
    pump();
  });
  const removeEndHook = session.onEnd(() => stream.close(http2constants.NGHTTP2_CANCEL));
  stream.once('close', removeEndHook);
}
