// DNS over HTTP (RFC 8484) for tunnel clients: POST with an application/dns-message body, or GET with
// `?dns=<base64url>`. Queries are resolved with the session's namespace search path. A body longer than a DNS
// message is refused as soon as it is seen, and a session has a bounded number of queries in flight.

import { constants as http2constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { DNS_MESSAGE_TYPE, ERROR_HEADER, ERROR_MESSAGE_HEADER, SESSION_HEADER, type WireErrorReason } from '../tunnel/protocol.js';
import type { ClusterInfoSource } from './cluster-info-source.js';
import type { DnsExchange } from './cluster-dns-client.js';
import { resolveInCluster } from './cluster-resolver.js';
import { DnsFormatError } from '../dns/dns-message.js';
import type { Logger } from '../log/logger.js';
import { admit, DNS_MESSAGE_MAX_BYTES } from './manager-limits.js';
import type { SessionRegistry } from './session-registry.js';

export interface DnsEndpointDeps {
  sessions: SessionRegistry;
  cluster: ClusterInfoSource;
  exchange: DnsExchange;
  log: Logger;
}

const TOO_LARGE = `A DNS query is at most ${DNS_MESSAGE_MAX_BYTES.toLocaleString('en')} bytes.`;

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

/** `identity`: who the request was authenticated as; only that identity's sessions serve it. */
export async function serveDnsQuery(req: Http2ServerRequest, res: Http2ServerResponse, deps: DnsEndpointDeps, identity: string): Promise<void> {
  if (req.method !== 'POST' && req.method !== 'GET') {
    fail(res, 405, undefined, 'DNS queries are POST or GET (RFC 8484).');
    return;
  }
  const sessionId = req.headers[SESSION_HEADER];
  const session = typeof sessionId === 'string' ? deps.sessions.owned(sessionId, identity) : undefined;
  if (session === undefined) {
    fail(res, 403, 'session', 'No live session of yours: arrive at the traffic manager and send its id in kubetun-session.');
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
    const answer = await resolveInCluster(query, {
      namespace: namespace || 'default',
      clusterDomain: deps.cluster.current().facts.clusterDomain,
      exchange: deps.exchange,
    });
    // The length lets the client take the answer without waiting for END_STREAM, which Node sends a turn later.
    res.writeHead(200, { 'content-type': DNS_MESSAGE_TYPE, 'content-length': answer.length, 'cache-control': 'no-store' }).end(answer);
  } catch (error) {
    if (!(error instanceof DnsFormatError)) throw error;
    fail(res, 400, undefined, error.message);
  }
}
