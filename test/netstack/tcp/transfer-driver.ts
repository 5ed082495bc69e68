// Application logic for bulk-transfer tests: each side writes its source as fast as the send buffer takes
// it, ends, and reads everything the other side sends.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { seededRandom } from '../../../src/seeded-random.js';
import { SimLink } from './sim-link.js';

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

/** Simulated ms to move `bytes` from A to B (B only acknowledges) over a link of `delayMs` one way and
 *  `rateAtoB` bytes/ms, with `dataLoss` of A's data segments and `ackLoss` of B's segments dropped, and 5 % of
 *  B's segments reordered when ACKs are lost. */
export function bulkTransferTime(opts: { bytes: number; delayMs: number; rateAtoB: number; dataLoss: number; ackLoss: number; seed: number }): number {
  const { bytes, dataLoss, ackLoss, seed } = opts;
  const link = new SimLink({ delayMs: opts.delayMs, rateAtoB: opts.rateAtoB, reorder: ackLoss > 0 ? 0.05 : 0, reorderDelayMs: opts.delayMs / 2, seed });
  const random = seededRandom(seed + 1);
  link.dropIf = (seg, fromA) => {
    if (seg.flags & 0x07) return false; // the handshake and the close are not what is measured
    return random() < (fromA ? (seg.payload.length > 0 ? dataLoss : 0) : ackLoss);
  };
  const config = tcpConfig({ timeWaitMs: 1 });
  link.a = TcpConnection.connect(40000, 80, 1000, 0, config);
  link.listener = { config, iss: 0x7000_0000, autoAccept: true };
  const a = new Endpoint(link.a, randomBytes(bytes, seed));
  let b: Endpoint | null = null;
  link.onStep = () => {
    if (b === null && link.b !== null) b = new Endpoint(link.b, Buffer.alloc(0));
    a.pump();
    b?.pump();
  };
  let start = -1;
  const done = link.run(() => {
    if (start < 0 && link.a?.state === 'ESTABLISHED') start = link.now;
    return b !== null && b.receivedBytes === bytes;
  }, 600_000);
  assert.ok(done, `${bytes} bytes not delivered by t=${link.now}`);
  return link.now - start;
}
