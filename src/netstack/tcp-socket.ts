// A TCP flow of the user-space stack as a Node Duplex. Backpressure runs both ways: the receive window only
// reopens as the application reads (push() returning false stops reading from the connection), and writes
// complete only once the connection's send buffer has taken the bytes.
import { Duplex } from 'node:stream';
import { formatIp } from './wire/ip-address.js';
import type { Endpoint } from './endpoint.js';
import type { TcpCloseReason, TcpConnection } from './tcp/tcp-connection.js';

const CLOSE_ERRORS: Partial<Record<TcpCloseReason, [code: string, message: string]>> = {
  reset: ['ECONNRESET', 'the peer reset the connection'],
  refused: ['ECONNREFUSED', 'the peer refused the connection'],
  timeout: ['ETIMEDOUT', 'the peer stopped answering (retransmissions exhausted)'],
  unreachable: ['EHOSTUNREACH', 'an ICMP error said the peer cannot be reached'],
};

export class TcpSocketError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'TcpSocketError';
  }
}

export class TcpSocket extends Duplex {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private pendingWrite: { chunk: Buffer; callback: (error?: Error | null) => void } | null = null;
  private wantRead = false;
  private remoteFinished = false;
  private readEnded = false;

  /** @param wake tells the stack this flow has output to send (data, window update, FIN, RST). */
  constructor(
    private readonly connection: TcpConnection,
    private readonly wake: () => void,
    local: Endpoint,
    remote: Endpoint,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    this.localAddress = formatIp(local.address);
    this.localPort = local.port;
    this.remoteAddress = formatIp(remote.address);
    this.remotePort = remote.port;
    connection.events = {
      established: () => this.emit('connect'),
      readable: () => this.pull(),
      writable: () => this.flushPendingWrite(),
      remoteClosed: () => {
        this.remoteFinished = true;
        this.pull();
      },
      closed: (reason) => this.onConnectionClosed(reason),
    };
  }

  /** The connection's TCP state, for status and tests. */
  get tcpState(): string {
    return this.connection.state;
  }

  override _read(): void {
    this.wantRead = true;
    this.pull();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.connection.state === 'CLOSED') {
      callback(new TcpSocketError('EPIPE', 'write after the connection closed'));
      return;
    }
    const accepted = this.connection.write(chunk);
    this.wake();
    if (accepted === chunk.length) callback();
    else this.pendingWrite = { chunk: chunk.subarray(accepted), callback };
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.connection.end();
    this.wake();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const finishedBothWays = this.readEnded && this.writableFinished;
    if (this.connection.state !== 'CLOSED' && (error !== null || !finishedBothWays)) {
      this.connection.abort();
      this.wake();
    }
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    pending?.callback(error ?? new TcpSocketError('EPIPE', 'socket destroyed with a write pending'));
    callback(error);
  }

  private pull(): void {
    if (!this.wantRead) return;
    let freed = false;
    for (;;) {
      const data = this.connection.read();
      if (data === null) break;
      freed = true;
      if (!this.push(data)) {
        this.wantRead = false;
        break;
      }
    }
    if (freed) this.wake();
    if (this.wantRead && this.remoteFinished && !this.readEnded) {
      this.readEnded = true;
      this.push(null);
    }
  }

  private flushPendingWrite(): void {
    const pending = this.pendingWrite;
    if (pending === null) return;
    const accepted = this.connection.write(pending.chunk);
    if (accepted > 0) this.wake();
    if (accepted === pending.chunk.length) {
      this.pendingWrite = null;
      pending.callback();
    } else {
      pending.chunk = pending.chunk.subarray(accepted);
    }
  }

  private onConnectionClosed(reason: TcpCloseReason): void {
    const failure = CLOSE_ERRORS[reason];
    if (failure !== undefined) {
      this.destroy(new TcpSocketError(failure[0], failure[1]));
      return;
    }
    if (reason === 'closed') {
      this.remoteFinished = true;
      this.pull();
    }
  }
}
