// The errors a tunnel client reports. The root daemon maps them to what a local application would see:
// REFUSED → TCP RST, UNREACHABLE/TIMEOUT/FORBIDDEN/LIMIT → ICMP unreachable (or RST), SESSION → arrive again,
// CONNECTION → reconnect to the traffic manager. LIMIT: the session holds as many flows as the manager allows.

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
