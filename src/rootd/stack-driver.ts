// Moves packets between a TUN device and the network stack, and keeps the stack's single timer. All stack work
// runs on the event loop thread: a batch of packets in → one output round → one batched write.
import { performance } from 'node:perf_hooks';
import type { NetStack } from '../netstack/stack.js';
import type { TunDevice } from './tun-device.js';

export class StackDriver {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private flushQueued = false;
  private inBatch = false;
  private stopped = false;

  constructor(
    private readonly device: TunDevice,
    private readonly stack: NetStack,
  ) {
    stack.onWake = () => this.queueFlush();
  }

  start(): void {
    this.device.start((packets, checked) => {
      const now = performance.now();
      // Wakes during input (the application read a request and freed receive window) are served by the flush
      // right after it: scheduling an output round of their own would cost an event-loop callback per batch.
      this.inBatch = true;
      try {
        if (checked === null) {
          for (const packet of packets) this.stack.input(packet, now);
        } else {
          for (let i = 0; i < packets.length; i++) this.stack.input(packets[i]!, now, checked[i] === 1);
        }
      } finally {
        this.inBatch = false;
      }
      this.flush();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Coalesces wake-ups from the application side (many writes in one tick → one output round). */
  private queueFlush(): void {
    if (this.flushQueued || this.stopped || this.inBatch) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      // A flush since the wake (a packet batch's, a timer's) may have served it already.
      if (this.stack.pollAt() === 0) this.flush();
    });
  }

  private flush(): void {
    if (this.stopped) return;
    const now = performance.now();
    const out: Buffer[] = [];
    const tails: Array<Buffer | null> = [];
    this.stack.output(now, out, tails);
    if (out.length > 0) {
      // The device copies every packet, with its payload tail (into the kernel, or into its own queue on EAGAIN).
      this.device.write(out, tails);
      this.stack.releaseOutput();
    }
    this.armTimer();
  }

  private armTimer(): void {
    const at = this.stack.pollAt();
    if (at === 0) {
      this.queueFlush();
      return;
    }
    if (at >= this.timerAt && this.timer !== null) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (!Number.isFinite(at)) return;
    const delay = Math.max(0, at - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.flush();
    }, Math.ceil(delay));
  }
}
