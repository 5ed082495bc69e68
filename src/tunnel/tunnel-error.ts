// The errors a tunnel client reports. The root daemon maps them to what a local application would see:
// REFUSED → TCP RST, UNREACHABLE/TIMEOUT/FORBIDDEN/LIMIT → ICMP unreachable (or RST), SESSION → arrive again,
// CONNECTION → reconnect to the traffic manager. LIMIT: the session holds as many flows as the manager allows.

import type { IncomingHttpHeaders, IncomingHttpStatusHeader } from 'node:http2';
import { ERROR_HEADER, ERROR_MESSAGE_HEADER, errorCodeFor, headerText } from './protocol.js';

export type TunnelErrorCode = 'REFUSED' | 'UNREACHABLE' | 'TIMEOUT' | 'FORBIDDEN' | 'SESSION' | 'LIMIT' | 'CONNECTION';

export class TunnelError extends Error {
  constructor(
    readonly code: TunnelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TunnelError';
  }
}

/** The failure a manager's non-200 answer to a stream describes (its kubetun-error and sentence), for `what`. */
export function answeredError(headers: IncomingHttpHeaders & IncomingHttpStatusHeader, what: string): TunnelError {
  const status = headers[':status'] ?? 0;
  const message = headerText(headers[ERROR_MESSAGE_HEADER]) ?? `the traffic manager answered ${status}`;
  return new TunnelError(errorCodeFor(status, headerText(headers[ERROR_HEADER])), `${what}: ${message}`);
}
