// The receive side of a connection (gVisor's receiver): receive sequence space, the window we advertise (with
// receiver SWS avoidance), reassembly of out-of-order segments, and the ACK policy — delayed ACKs, the
// duplicate ACKs owed for out-of-order arrivals, and the SACK blocks to report.

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import type { TcpConfig } from './tcp-config.js';
import { OutOfOrderAssembler, ReceiveQueue } from './tcp-receive-buffer.js';
import { seqAdd, seqDiff, seqGt, seqLe, seqLt } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const { FIN, SYN, RST } = TcpFlags;
const EMPTY = Buffer.alloc(0);
const NEVER = Number.POSITIVE_INFINITY;
const DEFAULT_MSS = 536;

/** What admit decided about an arriving segment. */
export const ADMIT_DROP = 0;
export const ADMIT_RESET = 1;
export const ADMIT_OK = 2;

const MAX_WINDOW_SHIFT = 14;
/** TS.Recent older than this is invalid (RFC 7323 §5.5): the peer's timestamp clock, at the fastest tick
 *  allowed (1 ms), may have moved on by more than 2^31 since, which would make every segment look old. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;

/** The smallest shift that lets the window field express `window` (RFC 7323 §2.3). */
function windowShiftFor(window: number): number {
  let shift = 0;
  while (shift < MAX_WINDOW_SHIFT && window >> shift > 0xffff) shift++;
  return shift;
}

export class TcpReceiver {
  private irs = 0;
  rcvNxt = 0;
  /** Our window scale; 0 when the peer did not offer scaling. */
  rcvShift: number;
  /** Right edge of the window we advertised last; never moved left (RFC 9293 §3.8.6). */
  rcvAdvRight = 0;
  readonly queue = new ReceiveQueue();
  private readonly assembler: OutOfOrderAssembler;
  remoteFinSeq = 0;
  remoteFinKnown = false;
  remoteFinReceived = false;
  /** TS.Recent (RFC 7323 §4.3), set through setTsRecent, and the ACK it may be updated against. */
  tsRecent = 0;
  private tsRecentAt = 0;
  private lastAckSent = 0;

  ackNow = false;
  private unackedBytes = 0;
  /** Largest segment received: ACK at least every two of these (RFC 5681 §4.2). */
  private rcvMss = DEFAULT_MSS;
  /** Out-of-order segments since the last transmit: each deserves a duplicate ACK (RFC 5681 §4.2) even when
   *  the driver hands us a batch before transmitting. */
  duplicateAcksOwed = 0;
  /** The SACK blocks every segment of the current transmit carries, or null. */
  sackBlocks: Array<[number, number]> | null = null;

  /** The admitted segment, trimmed to the window (set by admit). */
  segSeq = 0;
  segPayload: Buffer = EMPTY;
  segFlags = 0;

  constructor(
    private readonly config: TcpConfig,
    private readonly timers: TcpTimers,
  ) {
    this.rcvShift = config.windowScaling ? windowShiftFor(Math.min(config.recvBufferSize, config.maxAdvertisedWindow)) : 0;
    this.assembler = new OutOfOrderAssembler(config.maxOutOfOrderSegments, config.maxOutOfOrderBytes);
  }

  /** The peer's ISN arrived (its SYN). */
  synchronize(seq: number): void {
    this.irs = seq >>> 0;
    this.rcvNxt = seqAdd(this.irs, 1);
    this.lastAckSent = this.rcvNxt;
  }

  /** RFC 6191: a SYN on this 4-tuple is a new incarnation when its timestamp (with `timestamps`), or else
   *  its ISN, is newer than what this one saw. */
  isNewer(syn: TcpRepr, timestamps: boolean): boolean {
    const ts = syn.options.timestamp;
    if (timestamps && ts !== undefined) return seqGt(ts.value, this.tsRecent);
    return seqGt(syn.seq, this.rcvNxt);
  }

  setTsRecent(value: number, now: number): void {
    this.tsRecent = value;
    this.tsRecentAt = now;
  }

  /** The first checks of RFC 9293 §3.10.7.4 on a synchronized connection — PAWS (RFC 7323 §5), the sequence
   *  number, RST and SYN (RFC 5961 §3, §4) — then the trim to the window into segSeq/segPayload/segFlags. */
  admit(seg: TcpRepr, timestamps: boolean, now: number): number {
    let flags = seg.flags;
    let seq = seg.seq >>> 0;
    let payload = seg.payload;
    const ts = seg.options.timestamp;
    // An old timestamp marks an old duplicate, unless TS.Recent expired after a long idle time (§5.5).
    if (
      timestamps &&
      ts !== undefined &&
      !(flags & RST) &&
      seqLt(ts.value, this.tsRecent) &&
      now - this.tsRecentAt <= PAWS_IDLE_MS
    ) {
      this.ackNow = true;
      return ADMIT_DROP;
    }
    // A retransmitted SYN (our SYN-ACK or ACK was lost): answer it, then treat the rest as ordinary.
    if (flags & SYN && seq === this.irs) {
      flags &= ~SYN;
      seq = seqAdd(seq, 1);
      this.ackNow = true;
    }
    if (!this.acceptable(seq, payload.length + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0))) {
      if (!(flags & RST)) this.ackNow = true;
      return ADMIT_DROP;
    }
    this.timers.heardFrom(now);
    if (timestamps && ts !== undefined && seqLe(seq, this.lastAckSent)) this.setTsRecent(ts.value, now);
    if (flags & RST) {
      // Only an exact match resets; anything else in the window gets a challenge ACK.
      if (seq === this.rcvNxt) return ADMIT_RESET;
      this.ackNow = true;
      return ADMIT_DROP;
    }
    if (flags & SYN) {
      this.ackNow = true; // challenge ACK
      return ADMIT_DROP;
    }
    if (seqLt(seq, this.rcvNxt)) {
      const cut = seqDiff(this.rcvNxt, seq);
      if (cut >= payload.length) {
        if (cut > payload.length) flags &= ~FIN;
        payload = EMPTY;
      } else {
        payload = payload.subarray(cut);
      }
      seq = this.rcvNxt;
      this.ackNow = true;
    }
    const room = seqDiff(this.rcvAdvRight, seq);
    if (payload.length > room) {
      payload = room > 0 ? payload.subarray(0, room) : EMPTY;
      flags &= ~FIN;
      this.ackNow = true;
    }
    this.segSeq = seq;
    this.segPayload = payload;
    this.segFlags = flags;
    return ADMIT_OK;
  }

  /** RFC 9293 §3.10.7.4's acceptance test against the window we advertised. */
  private acceptable(seq: number, segLen: number): boolean {
    const wnd = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    // Zero window: still take ACKs, RSTs and a FIN at exactly rcvNxt (the data is trimmed away).
    if (wnd === 0) return seq === this.rcvNxt;
    const first = seqDiff(seq, this.rcvNxt);
    if (first >= 0 && first < wnd) return true;
    if (segLen === 0) return false;
    const last = first + segLen - 1;
    return last >= 0 && last < wnd;
  }

  /** Takes in-window data; returns true when it continued the in-order stream (new readable bytes). */
  receiveData(seq: number, payload: Buffer, now: number): boolean {
    if (seq !== this.rcvNxt) {
      // Beyond a hole: keep it if the bounds allow, and send a duplicate ACK with SACK blocks either way.
      this.assembler.insert(seq, payload);
      this.ackNow = true;
      this.duplicateAcksOwed++;
      return false;
    }
    this.queue.push(payload);
    this.rcvNxt = seqAdd(this.rcvNxt, payload.length);
    if (!this.assembler.isEmpty) {
      this.rcvNxt = this.assembler.drainInto(this.rcvNxt, this.queue);
      this.ackNow = true; // a hole was filled: tell the sender at once (RFC 5681 §4.2)
    }
    this.unackedBytes += payload.length;
    if (payload.length > this.rcvMss) this.rcvMss = Math.min(payload.length, this.config.mss);
    if (this.config.delayedAckMs === 0 || this.unackedBytes >= 2 * this.rcvMss) this.ackNow = true;
    else this.timers.armDelayedAck(now);
    return true;
  }

  receiveFin(): void {
    this.remoteFinReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ackNow = true;
  }

  /** The application takes the next buffer; a window update goes out once the window grew enough. */
  read(synchronized: boolean): Buffer | null {
    const data = this.queue.shift();
    if (data !== null && synchronized && this.windowUpdateWorthSending()) this.ackNow = true;
    return data;
  }

  /** Chooses the SACK blocks for the segments of this transmit. */
  prepareSackBlocks(sack: boolean, timestamps: boolean): void {
    this.sackBlocks = sack && !this.assembler.isEmpty ? this.assembler.sackBlocks(timestamps ? 3 : 4) : null;
  }

  /** Option bytes the SACK blocks take on each segment (kind, length, 8 per block, padded to 4). */
  get sackOptionBytes(): number {
    const blocks = this.sackBlocks;
    return blocks === null ? 0 : (2 + 8 * blocks.length + 3) & ~3;
  }

  /** A segment carrying our ACK and window went out: nothing is owed any more. */
  ackSent(): void {
    this.ackNow = false;
    this.timers.delayedAckAt = NEVER;
    this.unackedBytes = 0;
    this.lastAckSent = this.rcvNxt;
  }

  /** Free receive space, capped. */
  receiveWindow(): number {
    const free = Math.max(0, this.config.recvBufferSize - this.queue.bytes);
    return Math.min(free, this.config.maxAdvertisedWindow, 0xffff * 2 ** this.rcvShift);
  }

  /** Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): move the right edge only by a worthwhile amount. */
  private windowUpdateWorthSending(): boolean {
    const newRight = seqAdd(this.rcvNxt, this.receiveWindow());
    const threshold = Math.min(this.config.recvBufferSize / 2, this.config.mss);
    return seqDiff(newRight, this.rcvAdvRight) >= threshold;
  }

  /** The window field for the next segment; records the advertised right edge. */
  advertiseWindow(): number {
    const scale = 2 ** this.rcvShift;
    let field: number;
    if (this.windowUpdateWorthSending() || seqLt(this.rcvAdvRight, this.rcvNxt)) {
      field = Math.floor(this.receiveWindow() / scale);
    } else {
      field = Math.ceil(Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt)) / scale);
    }
    field = Math.min(field, 0xffff);
    const right = seqAdd(this.rcvNxt, field * scale);
    if (seqGt(right, this.rcvAdvRight)) this.rcvAdvRight = right;
    return field;
  }
}
