// Dials a TCP destination for a CONNECT stream, with a deadline, and names the failure the way the client
// reproduces it locally: refused (RST), unreachable (ICMP), timeout.

import * as net from 'node:net';

export type DialFailure = 'refused' | 'unreachable' | 'timeout';

export class DialError extends Error {
  constructor(
    readonly reason: DialFailure,
    message: string,
  ) {
    super(message);
    this.name = 'DialError';
  }
}

export type TcpDialer = (host: string, port: number) => Promise<net.Socket>;

export interface TcpDialerOptions {
  timeoutMs: number;
  /** Creates the socket; tests inject one that never connects. */
  createConnection?: (options: net.TcpNetConnectOpts) => net.Socket;
}

/** EHOSTUNREACH, ENETUNREACH and anything unexpected count as unreachable. */
function failureOf(error: NodeJS.ErrnoException): DialFailure {
  if (error.code === 'ECONNREFUSED' || error.code === 'ECONNRESET') return 'refused';
  if (error.code === 'ETIMEDOUT') return 'timeout';
  return 'unreachable';
}

export function createTcpDialer(options: TcpDialerOptions): TcpDialer {
  const createConnection = options.createConnection ?? net.createConnection;
  return (host, port) =>
    new Promise<net.Socket>((resolve, reject) => {
      // Half-open on purpose: each direction of the flow ends on its own (END_STREAM ↔ FIN).
      const socket = createConnection({ host, port, allowHalfOpen: true, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DialError('timeout', `connecting to ${host} port ${port} timed out after ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(socket);
      });
      const onError = (error: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new DialError(failureOf(error), `connecting to ${host} port ${port} failed: ${error.code ?? error.message}`));
      };
      socket.once('error', onError);
    });
}
