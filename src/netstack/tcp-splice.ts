// A TCP connection of the stack coupled straight to a Node Duplex (the root daemon's tunnel stream), without the
// Readable/Writable machinery a TcpSocket and pipe() put between them: per request that machinery cost more CPU
// than the stack itself (push, 'data' events, writeOrBuffer, nextTick callbacks, both ways). The semantics are
// pipe()'s, both ways: backpressure (the receive window stays closed while the stream's buffer is full; the stream
// pauses while the send buffer is full), each side's end (FIN) to the other once its data went, and any abnormal
// end of one side resets the other.
import type { Duplex } from 'node:stream';
import type { TcpCloseReason, TcpConnection } from './tcp/tcp-connection.js';

export interface TcpSpliceObserver {
  /** Bytes the client sent, handed to the stream. */
  up?(bytes: number): void;
  /** Bytes from the stream, handed to the connection. */
  down?(bytes: number): void;
  /** Once, when the flow is over: both ends finished, or either failed. */
  closed?(): void;
}

export class TcpSplice {
  /** Stream bytes the connection's send buffer had no room for yet; the stream is paused meanwhile. */
  private pending: Buffer | null = null;
  /** stream.write() asked us to wait for 'drain': further client data stays in the receive buffer. */
  private upBlocked = false;
  private clientFinished = false;
  private upEnded = false;
  private streamEnded = false;
  private downEnded = false;
  private over = false;

  /** @param wake tells the stack this flow has output to send (data, window update, FIN, RST). */
  constructor(
    private readonly connection: TcpConnection,
    private readonly wake: () => void,
    private readonly stream: Duplex,
    private readonly observer: TcpSpliceObserver = {},
  ) {
    connection.events = {
      readable: () => this.forwardUp(),
      writable: () => this.forwardDown(),
      remoteClosed: () => {
        this.clientFinished = true;
        this.forwardUp();
      },
      closed: (reason) => this.connectionClosed(reason),
    };
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    stream.on('end', () => {
      this.streamEnded = true;
      this.forwardDown();
    });
    stream.on('drain', () => {
      this.upBlocked = false;
      this.forwardUp();
    });
    // The destination or the tunnel failed: the client gets a RST, as a reset peer would send.
    stream.on('error', () => this.resetClient());
    stream.on('close', () => {
      if (!this.streamEnded) this.resetClient();
    });
  }

  /** The connection failed inside the stack: the stream is reset; the stack has already dropped the connection. */
  destroy(): void {
    this.finish();
  }

  private forwardUp(): void {
    if (this.over) return;
    let freed = false;
    let drained = false;
    while (!this.upBlocked) {
      const data = this.connection.read();
      if (data === null) {
        drained = true;
        break;
      }
      freed = true;
      if (this.stream.destroyed) {
        // Nowhere to deliver it (the stream closed after its end): the client must learn its data was lost.
        this.resetClient();
        return;
      }
      this.observer.up?.(data.length);
      if (!this.stream.write(data)) this.upBlocked = true;
    }
    // Reading reopened the receive window.
    if (freed) this.wake();
    if (drained && this.clientFinished && !this.upEnded) {
      this.upEnded = true;
      if (!this.stream.destroyed) this.stream.end();
      this.finishIfDone();
    }
  }

  private receive(chunk: Buffer): void {
    if (this.over) return;
    this.observer.down?.(chunk.length);
    const data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    const accepted = this.connection.write(data);
    if (accepted > 0) this.wake();
    if (accepted < data.length) {
      this.pending = data.subarray(accepted);
      this.stream.pause();
    }
  }

  private forwardDown(): void {
    if (this.over) return;
    const pending = this.pending;
    if (pending !== null) {
      const accepted = this.connection.write(pending);
      if (accepted > 0) this.wake();
      if (accepted < pending.length) {
        this.pending = pending.subarray(accepted);
        return;
      }
      this.pending = null;
      this.stream.resume();
    }
    if (this.streamEnded && !this.downEnded) {
      this.downEnded = true;
      this.connection.end();
      this.wake();
      this.finishIfDone();
    }
  }

  private connectionClosed(reason: TcpCloseReason): void {
    if (reason === 'closed' && this.downEnded) {
      // Both FINs went, but what the client sent may still wait for the stream's 'drain': forwardUp ends the flow.
      this.clientFinished = true;
      this.forwardUp();
      return;
    }
    this.finish();
  }

  private resetClient(): void {
    if (this.over) return;
    this.connection.abort();
    this.wake();
    this.finish();
  }

  private finishIfDone(): void {
    if (this.upEnded && this.downEnded) this.finish();
  }

  /** Ends the flow; a stream that has not finished both ways is reset (the manager resets the destination). */
  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.pending = null;
    if (!(this.upEnded && this.streamEnded)) this.stream.destroy();
    this.observer.closed?.();
  }
}
