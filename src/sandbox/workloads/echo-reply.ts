// What the echo workload answers: the pod's name and the request's source address and port, as text or (Accept:
// application/json, or ?format=json) JSON, with the request's headers when asked (?headers=1). The same reply for
// HTTP/1.1 and HTTP/2 requests (node:http and node:http2's compatibility API look alike here).

import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

export interface EchoReply {
  pod: string;
  namespace: string;
  client: { address: string; port: number };
  server: { address: string; port: number };
  method: string;
  path: string;
  host: string | null;
  /** Bytes of request body received. */
  bodyBytes: number;
  /** "1.1" or "2.0". */
  httpVersion: string;
  /** The request's headers as they arrived (HTTP/2's pseudo-headers included), with ?headers=1 only. */
  headers?: Record<string, string | string[] | undefined>;
}

export interface EchoIdentity {
  pod: string;
  namespace: string;
}

export type EchoRequest = IncomingMessage | Http2ServerRequest;

export function formatEchoText(reply: EchoReply): string {
  const headers = Object.entries(reply.headers ?? {}).flatMap(([name, value]) => (Array.isArray(value) ? value : [value ?? '']).map((v) => `header: ${name}: ${v}\n`));
  return (
    `pod: ${reply.pod}\n` +
    `namespace: ${reply.namespace}\n` +
    `client: ${reply.client.address} port ${reply.client.port}\n` +
    `server: ${reply.server.address} port ${reply.server.port}\n` +
    `request: ${reply.method} ${reply.path}${reply.host === null ? '' : ` host ${reply.host}`}\n` +
    `body bytes: ${reply.bodyBytes}\n` +
    headers.join('')
  );
}

/** The request's query; none when its target is not a URL path (a hostile client's, say). */
function query(req: EchoRequest): URLSearchParams {
  try {
    return new URL(req.url ?? '/', 'http://echo').searchParams;
  } catch {
    return new URLSearchParams();
  }
}

/** The reply to `req`, whose body had `bodyBytes` bytes. */
export function echoReply(identity: EchoIdentity, req: EchoRequest, bodyBytes: number): EchoReply {
  const socket = req.socket;
  const host = req.headers.host ?? req.headers[':authority'];
  return {
    pod: identity.pod,
    namespace: identity.namespace,
    client: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
    server: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    host: typeof host === 'string' ? host : null,
    bodyBytes,
    httpVersion: req.httpVersion,
    ...(query(req).get('headers') === '1' ? { headers: { ...req.headers } } : {}),
  };
}

/** The reply's body and response headers: JSON when the request asked for it, else text. */
export function renderEchoReply(req: EchoRequest, reply: EchoReply): { body: string; headers: Record<string, string | number> } {
  const json = query(req).get('format') === 'json' || (req.headers.accept ?? '').includes('application/json');
  const body = json ? `${JSON.stringify(reply)}\n` : formatEchoText(reply);
  return {
    body,
    headers: {
      'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-pod-name': reply.pod,
      'x-served-by': reply.pod,
    },
  };
}
