// The errors a tunnel client reports. The root daemon maps them to what a local application would see:
// REFUSED → TCP RST, UNREACHABLE/TIMEOUT/FORBIDDEN → ICMP unreachable (or RST), SESSION → arrive again,
// CONNECTION → reconnect to the traffic manager.

export type TunnelErrorCode = 'REFUSED' | 'UNREACHABLE' | 'TIMEOUT' | 'FORBIDDEN' | 'SESSION' | 'CONNECTION';

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
