// DNS over HTTP (RFC 8484) for tunnel clients: POST with an application/dns-message body, or GET with
// `?dns=<base64url>`. Queries are resolved with the session's namespace search path.

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { DNS_MESSAGE_TYPE, ERROR_HEADER, ERROR_MESSAGE_HEADER, SESSION_HEADER } from '../tunnel/protocol.js';
import type { ClusterInfoSource } from './cluster-info-source.js';
import type { DnsExchange } from './cluster-dns-client.js';
import { resolveInCluster } from './cluster-resolver.js';
import { DnsFormatError } from '../dns/dns-message.js';
import type { Logger } from '../log/logger.js';
import type { SessionRegistry } from './session-registry.js';

export interface DnsEndpointDeps {
  sessions: SessionRegistry;
  cluster: ClusterInfoSource;
  exchange: DnsExchange;
  log: Logger;
}

const MAX_QUERY_BYTES = 65_535;

function fail(res: Http2ServerResponse, status: number, reason: string | undefined, message: string): void {
  const headers: Record<string, string> = { [ERROR_MESSAGE_HEADER]: message };
  if (reason !== undefined) headers[ERROR_HEADER] = reason;
  res.writeHead(status, headers).end();
}

function readBody(req: Http2ServerRequest): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length <= MAX_QUERY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(length <= MAX_QUERY_BYTES ? Buffer.concat(chunks, length) : undefined));
    req.on('error', () => resolve(undefined));
  });
}

async function queryOf(req: Http2ServerRequest): Promise<Buffer | undefined> {
  if (req.method === 'POST') return readBody(req);
  const dns = new URL(req.url, 'http://manager').searchParams.get('dns');
  return dns === null ? undefined : Buffer.from(dns, 'base64url');
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
  const query = await queryOf(req);
  if (query === undefined || query.length < 12) {
    fail(res, 400, undefined, 'The request carries no DNS query of at most 65,535 bytes.');
    return;
  }
  try {
    const answer = await resolveInCluster(query, {
      namespace: session.client.namespace || 'default',
      clusterDomain: deps.cluster.current().facts.clusterDomain,
      exchange: deps.exchange,
    });
    res.writeHead(200, { 'content-type': DNS_MESSAGE_TYPE, 'cache-control': 'no-store' }).end(answer);
  } catch (error) {
    if (!(error instanceof DnsFormatError)) throw error;
    fail(res, 400, undefined, error.message);
  }
}
