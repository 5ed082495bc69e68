// The authentication step of every request the traffic manager serves, and its refusal: 401 (no or bad
// credentials, with a WWW-Authenticate challenge), 403 (not allowed), 503 (the API server could not be asked).
// The same answer for RPCs, DNS and CONNECT streams; a gRPC client reads 401/403 as Unauthenticated/PermissionDenied.

import type { Http2ServerRequest, ServerHttp2Stream } from 'node:http2';
import { ERROR_HEADER, ERROR_MESSAGE_HEADER } from '../tunnel/protocol.js';
import { headerSafe } from './stream-answer.js';
import type { AuthOutcome, ClientAuthenticator } from './client-auth.js';

const REASON = { 401: 'unauthenticated', 403: 'forbidden', 503: 'unavailable' } as const;

/** Authenticates a request with its `authorization` header; its HTTP/2 connection keys what is remembered. */
export function authenticateRequest(authenticator: ClientAuthenticator, req: Http2ServerRequest): Promise<AuthOutcome> {
  const authorization = req.headers.authorization;
  return authenticator.authenticate(req.stream.session ?? req.stream, typeof authorization === 'string' ? authorization : undefined);
}

export function answerAuthFailure(stream: ServerHttp2Stream, outcome: Extract<AuthOutcome, { ok: false }>): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond(
    {
      ':status': outcome.status,
      [ERROR_HEADER]: REASON[outcome.status],
      [ERROR_MESSAGE_HEADER]: headerSafe(outcome.message),
      ...(outcome.status === 401 ? { 'www-authenticate': 'Bearer realm="kubetun"' } : {}),
    },
    { endStream: true },
  );
}
