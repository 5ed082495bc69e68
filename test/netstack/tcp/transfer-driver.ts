// Application logic for bulk-transfer tests: each side writes its source as fast as the send buffer takes
// it, ends, and reads everything the other side sends.

import { createHash } from 'node:crypto';
import type { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { seededRandom } from './sim-link.js';

export function randomBytes(n: number, seed: number): Buffer {
  const r = seededRandom(seed);
  const b = Buffer.allocUnsafe(n + 3);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((r() * 4294967296) >>> 0, i);
  return b.subarray(0, n);
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export class Endpoint {
  private written = 0;
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  remoteClosed = false;
  closedReason: string | null = null;
  /** Stop reading while true (a slow application). */
  paused = false;
  /** Hold the source back while false. */
  writing = true;

  constructor(
    readonly conn: TcpConnection,
    private readonly source: Buffer,
    /** Largest write() per call, to exercise the chunk list. */
    private readonly writeSize = 16384,
  ) {
    conn.events = {
      remoteClosed: () => {
        this.remoteClosed = true;
      },
      closed: (reason) => {
        this.closedReason = reason;
      },
    };
  }

  get doneWriting(): boolean {
    return this.written === this.source.length;
  }

  /** One round of application work. */
  pump(): void {
    const c = this.conn;
    if (!this.paused) {
      for (let b = c.read(); b !== null; b = c.read()) {
        this.received.push(Buffer.from(b));
        this.receivedBytes += b.length;
      }
    }
    if (c.state === 'CLOSED' || c.state === 'SYN-SENT' || c.state === 'SYN-RECEIVED') return;
    while (this.writing && this.written < this.source.length) {
      const piece = this.source.subarray(this.written, Math.min(this.source.length, this.written + this.writeSize));
      const n = c.write(piece);
      this.written += n;
      if (n < piece.length) break;
    }
    if (this.writing && this.doneWriting && (c.state === 'ESTABLISHED' || c.state === 'CLOSE-WAIT')) c.end();
  }

  data(): Buffer {
    return Buffer.concat(this.received);
  }
}
