// Lets a ConnectRPC transport issue its calls on the tunnel's own HTTP/2 session, so the control API and the
// tunnel streams share one connection (and one port-forward) to the traffic manager.

import type { ClientHttp2Session, ClientHttp2Stream, ClientSessionRequestOptions, OutgoingHttpHeaders } from 'node:http2';
import { Code, ConnectError } from '@connectrpc/connect';

/** Implements connect-node's NodeHttp2ClientSessionManager over one existing session. */
export class ControlSession {
  constructor(
    /** The origin ConnectRPC checks request URLs against, e.g. `http://127.0.0.1:8081`. */
    readonly authority: string,
    private readonly session: ClientHttp2Session,
  ) {}

  request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    options: Omit<ClientSessionRequestOptions, 'signal'>,
  ): Promise<ClientHttp2Stream> {
    try {
      return Promise.resolve(this.session.request({ ...headers, ':method': method, ':path': path }, options));
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      // Unavailable tells a ConnectRPC caller to connect again, as for any transport failure.
      const message = `The connection to the traffic manager is closed: ${why}.`;
      return Promise.reject(new ConnectError(message, Code.Unavailable, undefined, undefined, error));
    }
  }

  notifyResponseByteRead(): void {
    // The tunnel client checks liveness with its own PINGs.
  }
}
