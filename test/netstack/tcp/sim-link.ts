// A simulated link between two TcpConnections on a virtual clock: delay, seeded loss, reordering and
// duplication. Side A is the one the test creates; side B may be created by a listener when A's SYN arrives.

import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import type { TcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { resetFor } from '../../../src/netstack/tcp/tcp-reset.js';
import type { TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { seededRandom } from '../../../src/seeded-random.js';

export interface LinkFaults {
  /** One-way delay. */
  delayMs: number;
  loss: number;
  /** Probability that a segment is held back by up to reorderDelayMs extra. */
  reorder: number;
  reorderDelayMs: number;
  duplicate: number;
  seed: number;
  /** Bottleneck rate from A to B in bytes per ms (payload only, unbounded queue); 0 for none. */
  rateAtoB: number;
}

export interface LoggedSegment {
  t: number;
  fromA: boolean;
  seg: TcpRepr;
  dropped: boolean;
}

interface InFlight {
  at: number;
  order: number;
  toB: boolean;
  seg: TcpRepr;
}

export function copySegment(seg: TcpRepr): TcpRepr {
  const o = seg.options;
  return {
    ...seg,
    options: {
      ...o,
      ...(o.sack ? { sack: o.sack.map(([l, r]): [number, number] => [l, r]) } : {}),
      ...(o.timestamp ? { timestamp: { ...o.timestamp } } : {}),
    },
    payload: Buffer.from(seg.payload),
  };
}

export class SimLink {
  now = 0;
  a: TcpConnection | null = null;
  b: TcpConnection | null = null;
  readonly faults: LinkFaults;
  readonly log: LoggedSegment[] = [];
  /** Record every segment in `log` (tests that look at timelines). */
  recording = false;
  /** Drop a segment when this returns true (besides random loss). */
  dropIf: ((seg: TcpRepr, fromA: boolean) => boolean) | null = null;
  /** Deliver everything due before either side transmits (a driver reading packets in batches); by default
   *  the receiving side transmits after every segment. */
  batchDelivery = false;
  /** Application logic run after every round. */
  onStep: (() => void) | null = null;
  /** When set, A's SYN creates B through fromSyn. */
  listener: { config: TcpConfig; iss: number; autoAccept: boolean } | null = null;
  /** RSTs a missing or closed side answered with (resetFor), for assertions. */
  readonly resets: TcpRepr[] = [];
  segmentsFromA = 0;
  segmentsFromB = 0;
  private queue: InFlight[] = [];
  private order = 0;
  /** When the A→B bottleneck finishes sending what it holds. */
  private bottleneckFreeAt = 0;
  private readonly random: () => number;
  private readonly emitFromA = (seg: TcpRepr) => this.send(seg, true);
  private readonly emitFromB = (seg: TcpRepr) => this.send(seg, false);

  constructor(faults: Partial<LinkFaults> = {}) {
    this.faults = { delayMs: 5, loss: 0, reorder: 0, reorderDelayMs: 10, duplicate: 0, seed: 1, rateAtoB: 0, ...faults };
    this.random = seededRandom(this.faults.seed);
  }

  get inFlight(): number {
    return this.queue.length;
  }

  /** Delivers what is due, then lets both sides transmit, then runs the application hook. */
  step(): void {
    while (this.queue.length > 0 && this.queue[0].at <= this.now) {
      const p = this.queue.shift() as InFlight;
      this.deliver(p);
      if (!this.batchDelivery) {
        if (p.toB) this.b?.transmit(this.now, this.emitFromB);
        else this.a?.transmit(this.now, this.emitFromA);
      }
    }
    this.a?.transmit(this.now, this.emitFromA);
    this.b?.transmit(this.now, this.emitFromB);
    this.onStep?.();
  }

  nextEventAt(): number {
    let t = this.queue.length > 0 ? this.queue[0].at : Number.POSITIVE_INFINITY;
    if (this.a) t = Math.min(t, this.a.pollAt());
    if (this.b) t = Math.min(t, this.b.pollAt());
    return t;
  }

  /** Runs until `done()` or the clock passes `maxTimeMs`; returns whether done() became true. */
  run(done: () => boolean, maxTimeMs: number): boolean {
    let sameTimeRounds = 0;
    while (!done()) {
      this.step();
      if (done()) return true;
      const next = this.nextEventAt();
      if (next === Number.POSITIVE_INFINITY) return false;
      if (next > this.now) {
        this.now = next;
        sameTimeRounds = 0;
      } else if (++sameTimeRounds > 10_000) {
        throw new Error(`no progress at t=${this.now}: a connection reports work due but does none`);
      }
      if (this.now > maxTimeMs) return false;
    }
    return true;
  }

  /** Advances the clock to `t`, processing everything due on the way. */
  runUntilTime(t: number): void {
    this.run(() => this.now >= t && this.nextEventAt() > t, t);
    if (this.now < t) this.now = t;
    this.step();
  }

  private send(seg: TcpRepr, fromA: boolean): void {
    if (fromA) this.segmentsFromA++;
    else this.segmentsFromB++;
    const copy = copySegment(seg);
    const dropped = (this.dropIf?.(copy, fromA) ?? false) || this.random() < this.faults.loss;
    if (this.recording) this.log.push({ t: this.now, fromA, seg: copy, dropped });
    if (dropped) return;
    this.enqueue(copy, fromA);
    if (this.random() < this.faults.duplicate) this.enqueue(copySegment(copy), fromA);
  }

  private enqueue(seg: TcpRepr, toB: boolean): void {
    let at = this.now + this.faults.delayMs;
    if (toB && this.faults.rateAtoB > 0) {
      this.bottleneckFreeAt = Math.max(this.now, this.bottleneckFreeAt) + seg.payload.length / this.faults.rateAtoB;
      at = this.bottleneckFreeAt + this.faults.delayMs;
    }
    if (this.random() < this.faults.reorder) at += this.random() * this.faults.reorderDelayMs;
    const item: InFlight = { at, order: this.order++, toB, seg };
    const q = this.queue;
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (q[mid].at <= at) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, item);
  }

  private deliver(p: InFlight): void {
    if (p.toB && this.b === null && this.listener !== null && p.seg.flags === 0x02) {
      const l = this.listener;
      this.b = TcpConnection.fromSyn(p.seg, l.iss, this.now, l.config);
      if (l.autoAccept) this.b.accept(this.now);
      return;
    }
    const target = p.toB ? this.b : this.a;
    if (target === null || target.state === 'CLOSED') {
      const rst = resetFor(p.seg);
      if (rst !== null) {
        this.resets.push(rst);
        this.enqueue(rst, !p.toB);
      }
      return;
    }
    target.handleSegment(p.seg, this.now);
  }
}

/** A connected pair on a fresh link: A dialed, B accepted; the clock stands just after the handshake. */
export function establishedPair(configA: TcpConfig, configB: TcpConfig = configA, faults: Partial<LinkFaults> = {}): SimLink {
  const link = new SimLink(faults);
  link.recording = true;
  link.a = TcpConnection.connect(40000, 80, 0x1000, 0, configA);
  link.listener = { config: configB, iss: 0xfffffff0, autoAccept: true };
  const ok = link.run(() => link.a?.state === 'ESTABLISHED' && link.b?.state === 'ESTABLISHED' && link.inFlight === 0, 10_000);
  if (!ok) throw new Error('handshake did not complete');
  return link;
}

/** The last segment a side emitted (dropped or not). */
export function lastFrom(link: SimLink, fromA: boolean): TcpRepr {
  for (let i = link.log.length - 1; i >= 0; i--) if (link.log[i].fromA === fromA) return link.log[i].seg;
  throw new Error('that side sent nothing');
}
