// One TCP connection (RFC 9293) as a state machine with buffers and no I/O: segments come in through
// handleSegment, go out through transmit, and the clock is an argument. The stack owns demultiplexing,
// checksums and packets; this file owns sequence numbers, windows, timers and retransmission.

import { TcpFlags, type TcpOptions, type TcpRepr } from '../wire/reprs.js';
import { createCongestionControl, type CongestionControl } from './tcp-congestion.js';
import { MIN_PEER_MSS, type TcpConfig } from './tcp-config.js';
import { OutOfOrderAssembler, ReceiveQueue } from './tcp-receive-buffer.js';
import { RttEstimator } from './tcp-rtt.js';
import { SackScoreboard } from './tcp-sack-scoreboard.js';
import { SendBuffer } from './tcp-send-buffer.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './tcp-seq.js';

export type TcpState =
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT'
  | 'CLOSED';

export type TcpCloseReason = 'closed' | 'reset' | 'refused' | 'timeout' | 'aborted' | 'unreachable';

export interface TcpConnectionEvents {
  established?(): void;
  /** In-order data became available to read(). */
  readable?(): void;
  /** Send-buffer space freed after a write() accepted less than offered. */
  writable?(): void;
  /** The peer's FIN arrived in order (all data before it is readable). */
  remoteClosed?(): void;
  /** Once, when the connection reaches CLOSED (TIME-WAIT ends in 'closed'). */
  closed?(reason: TcpCloseReason): void;
}

const { FIN, SYN, RST, ACK } = TcpFlags;
const EMPTY = Buffer.alloc(0);
const MAX_WINDOW_SHIFT = 14;
const TIMESTAMP_OPTION_BYTES = 12;
const DEFAULT_PEER_MSS = 536;
/** Floor for a path MTU's MSS (RFC 8201's 1280-byte IPv6 minimum less 60 bytes of headers; IPv4 paths this
 *  small are not worth following, as in Linux's min_pmtu). */
const MIN_PATH_MSS = 1220;
const DUP_ACK_THRESHOLD = 3;

const EVENT_ESTABLISHED = 1;
const EVENT_READABLE = 2;
const EVENT_WRITABLE = 4;
const EVENT_REMOTE_CLOSED = 8;

/** What planSend chose: a retransmission forced by loss detection, a SACK hole, or new data (or a FIN, or
 *  data resent after a timeout, which advance sndNxt the same way). */
const SEND_FAST_RETRANSMIT = 0;
const SEND_HOLE = 1;
const SEND_DATA = 2;

function windowShiftFor(window: number): number {
  let shift = 0;
  while (shift < MAX_WINDOW_SHIFT && window >> shift > 0xffff) shift++;
  return shift;
}

export class TcpConnection {
  events: TcpConnectionEvents = {};
  readonly localPort: number;
  readonly remotePort: number;

  private readonly config: TcpConfig;
  private _state: TcpState;
  private now: number;
  private accepted: boolean;

  // Send sequence space. sndNxt is the next byte to (re)send; sndMax the highest ever sent, which differs
  // from sndNxt only while going back after a retransmission timeout.
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  private sndShift = 0;
  private wsEnabled = false;
  /** The unscaled window our SYN carried. */
  private synWindow = 0;
  private synAcked = false;
  /** Sequence number of the first byte in sendBuffer. */
  private sndBufSeq: number;
  private readonly sendBuffer: SendBuffer;
  private finQueued = false;
  private finAcked = false;
  private writeBlocked = false;

  // Receive sequence space.
  private irs = 0;
  private rcvNxt = 0;
  private rcvShift: number;
  /** Right edge of the window we advertised last; never moved left (RFC 9293 §3.8.6). */
  private rcvAdvRight = 0;
  private readonly receiveQueue = new ReceiveQueue();
  private readonly assembler: OutOfOrderAssembler;
  private remoteFinSeq = 0;
  private remoteFinKnown = false;
  private remoteFinReceived = false;

  // Options negotiated on the handshake.
  private peerMss = DEFAULT_PEER_MSS;
  /** From ICMP "fragmentation needed" / "packet too big" (RFC 1191/8201); never raised again. */
  private pathMss = Number.POSITIVE_INFINITY;
  private sackEnabled = false;
  private tsEnabled = false;
  private readonly tsOffset: number;
  private tsRecent = 0;
  private lastAckSent = 0;

  // ACK generation.
  private ackNow = false;
  private delayedAckAt = Number.POSITIVE_INFINITY;
  private unackedBytes = 0;
  /** Largest segment received: ACK at least every two of these (RFC 5681 §4.2). */
  private rcvMss = DEFAULT_PEER_MSS;
  /** Out-of-order segments since the last transmit: each deserves a duplicate ACK (RFC 5681 §4.2) even when
   *  the driver hands us a batch before transmitting. */
  private duplicateAcksOwed = 0;
  private sackBlocks: Array<[number, number]> | null = null;

  // Retransmission, recovery and congestion.
  private readonly rtt: RttEstimator;
  private cc: CongestionControl;
  private readonly scoreboard = new SackScoreboard();
  private rtoAt = Number.POSITIVE_INFINITY;
  private retries = 0;
  private synPending = false;
  private forceSend = false;
  private fastRetransmitPending = false;
  private inRecovery = false;
  private recover: number;
  private retransmitNext: number;
  private dupAcks = 0;
  /** NewReno window inflation during recovery without SACK (RFC 6582). */
  private inflation = 0;
  private rttTiming = false;
  private rttSeq = 0;
  private rttStart = 0;

  // Other timers.
  private persistAt = Number.POSITIVE_INFINITY;
  private persistBackoff = 0;
  private lastReceiveAt: number;
  private keepaliveProbes = 0;
  private timeWaitAt = Number.POSITIVE_INFINITY;

  // Ending.
  private abortPending = false;
  private resetPending: { reason: TcpCloseReason } | null = null;
  private resetReply: TcpRepr | null = null;
  private closeReason: TcpCloseReason | null = null;
  private closedReported = false;
  private pendingEvents = 0;

  // Set by planSend.
  private planKind: number = SEND_DATA;
  private planSeq = 0;
  private planLen = 0;
  private planFin = false;

  private constructor(localPort: number, remotePort: number, iss: number, now: number, config: TcpConfig, state: TcpState) {
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.config = config;
    this._state = state;
    this.now = now;
    this.accepted = state === 'SYN-SENT';
    this.iss = iss >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndBufSeq = seqAdd(this.iss, 1);
    this.recover = this.iss;
    this.retransmitNext = this.iss;
    this.sendBuffer = new SendBuffer(config.sendBufferSize);
    this.assembler = new OutOfOrderAssembler(config.maxOutOfOrderSegments, config.maxOutOfOrderBytes);
    this.rcvShift = config.windowScaling ? windowShiftFor(Math.min(config.recvBufferSize, config.maxAdvertisedWindow)) : 0;
    this.tsOffset = Math.imul(this.iss, 2654435761) >>> 0;
    this.rtt = new RttEstimator(config.initialRtoMs, config.minRtoMs, config.maxRtoMs);
    this.cc = createCongestionControl(config.congestion, DEFAULT_PEER_MSS);
    this.lastReceiveAt = now;
  }

  /** Passive open, two-phase: state SYN-RECEIVED, but nothing is sent until accept(). */
  static fromSyn(syn: TcpRepr, iss: number, now: number, config: TcpConfig): TcpConnection {
    const c = new TcpConnection(syn.dstPort, syn.srcPort, iss, now, config, 'SYN-RECEIVED');
    c.irs = syn.seq >>> 0;
    c.rcvNxt = seqAdd(c.irs, 1);
    c.lastAckSent = c.rcvNxt;
    c.negotiate(syn.options);
    c.sndWnd = syn.window;
    c.maxSndWnd = syn.window;
    c.sndWl1 = syn.seq;
    return c;
  }

  /** Active open: SYN-SENT; transmit() emits the SYN. */
  static connect(localPort: number, remotePort: number, iss: number, now: number, config: TcpConfig): TcpConnection {
    const c = new TcpConnection(localPort, remotePort, iss, now, config, 'SYN-SENT');
    c.synPending = true;
    return c;
  }

  get state(): TcpState {
    return this._state;
  }

  /** Payload bytes per MSS-sized packet towards the peer (what the device segments at). */
  get effectiveMss(): number {
    return Math.max(1, Math.min(this.peerMss, this.config.mss, this.pathMss) - (this.tsEnabled ? TIMESTAMP_OPTION_BYTES : 0));
  }

  get sendBuffered(): number {
    return this.sendBuffer.length;
  }

  get recvBuffered(): number {
    return this.receiveQueue.bytes;
  }

  /** SYN-ACK goes out on the next transmit(). */
  accept(now: number): void {
    if (this._state !== 'SYN-RECEIVED' || this.accepted) return;
    this.now = now;
    this.accepted = true;
    this.synPending = true;
    this.lastReceiveAt = now;
  }

  write(data: Buffer): number {
    if (this.finQueued || this.closeReason !== null || this.abortPending) return 0;
    const n = this.sendBuffer.write(data);
    if (n < data.length) this.writeBlocked = true;
    // Data written into a closed window must start the persist timer, or nothing would ever probe.
    if (n > 0 && this.isSynchronized()) this.updatePersistTimer(this.now);
    return n;
  }

  read(): Buffer | null {
    const data = this.receiveQueue.shift();
    if (data !== null && this.isSynchronized() && this.windowUpdateWorthSending()) this.ackNow = true;
    return data;
  }

  /** FIN after everything written. */
  end(): void {
    if (this.finQueued || this.closeReason !== null) return;
    this.finQueued = true;
    if (this._state === 'ESTABLISHED') this._state = 'FIN-WAIT-1';
    else if (this._state === 'CLOSE-WAIT') this._state = 'LAST-ACK';
  }

  /** RST on the next transmit, then CLOSED ('aborted'). */
  abort(): void {
    if (this.closeReason === null) this.abortPending = true;
  }

  /** ICMP said the path towards the peer takes at most `mss` bytes of TCP payload plus header options. */
  pathMtuChanged(mss: number): void {
    this.pathMss = Math.min(this.pathMss, Math.max(MIN_PATH_MSS, Math.floor(mss)));
  }

  /** An ICMP error quoting one of our segments: a hard one ends a connection that is still opening
   *  (RFC 1122 §4.2.3.9); soft ones, and hard ones once synchronized, leave it to the retransmission timer. */
  icmpError(hard: boolean): void {
    if (hard && (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') && this.accepted) {
      this.enterClosed('unreachable');
      this.flushEvents();
    }
  }

  /** Whether an ICMP error quoting our segment with sequence number `seq` can be genuine: only data in flight
   *  (RFC 5927 §4.1) — anything else is a forgery or stale, and is ignored. */
  quotesSegmentInFlight(seq: number): boolean {
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') return (seq >>> 0) === this.iss;
    return seqGe(seq >>> 0, this.sndUna) && seqLt(seq >>> 0, this.sndMax);
  }

  /** A SYN for this connection's 4-tuple may start a new incarnation (RFC 6191): only in TIME-WAIT, and only
   *  when its timestamp, or without timestamps its ISN, is newer than what this incarnation saw. */
  acceptsNewSyn(seg: TcpRepr): boolean {
    if (this._state !== 'TIME-WAIT' || (seg.flags & (SYN | ACK | RST)) !== SYN) return false;
    const ts = seg.options.timestamp;
    if (this.tsEnabled && ts !== undefined) return seqGt(ts.value, this.tsRecent);
    return seqGt(seg.seq, this.rcvNxt);
  }

  pollAt(): number {
    if (this._state === 'CLOSED') return this.closedReported ? Number.POSITIVE_INFINITY : this.now;
    if (this.abortPending || this.resetPending !== null || this.resetReply !== null) return this.now;
    if (this._state === 'TIME-WAIT') return this.ackNow ? this.now : this.timeWaitAt;
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') {
      if (!this.accepted) return Number.POSITIVE_INFINITY;
      if (this.synPending || this.ackNow) return this.now;
      return this.rtoAt;
    }
    if (this.ackNow || this.planSend()) return this.now;
    return Math.min(this.rtoAt, this.persistAt, this.delayedAckAt, this.keepaliveAt());
  }

  transmit(now: number, emit: (seg: TcpRepr) => void): void {
    this.now = now;
    if (this.resetReply !== null) {
      emit(this.resetReply);
      this.resetReply = null;
    }
    if (this.abortPending) {
      this.abortPending = false;
      const sendRst = this._state !== 'SYN-SENT' && this._state !== 'TIME-WAIT' && this._state !== 'CLOSED';
      if (sendRst) emit(this.rstSegment());
      this.enterClosed('aborted');
    } else if (this.resetPending !== null) {
      emit(this.rstSegment());
      this.enterClosed(this.resetPending.reason);
      this.resetPending = null;
    } else {
      this.transmitByState(now, emit);
    }
    this.flushEvents();
  }

  handleSegment(seg: TcpRepr, now: number): void {
    this.now = now;
    switch (this._state) {
      case 'CLOSED':
        return;
      case 'SYN-SENT':
        this.onSegmentInSynSent(seg);
        break;
      case 'TIME-WAIT':
        this.onSegmentInTimeWait(seg);
        break;
      default:
        if (this._state === 'SYN-RECEIVED' && !this.accepted) {
          // Nothing was answered yet: the peer gave up on its SYN.
          if (seg.flags & RST) this.enterClosed('reset');
          break;
        }
        this.onSegmentSynchronized(seg);
    }
    this.flushEvents();
  }

  // ---- handshake ----

  private negotiate(options: TcpOptions): void {
    if (options.mss !== undefined) this.peerMss = Math.max(MIN_PEER_MSS, options.mss);
    this.wsEnabled = this.config.windowScaling && options.windowScale !== undefined;
    if (this.wsEnabled) {
      this.sndShift = Math.min(options.windowScale ?? 0, MAX_WINDOW_SHIFT);
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    this.sackEnabled = this.config.sack && options.sackPermitted === true;
    if (this.config.timestamps && options.timestamp !== undefined) {
      this.tsEnabled = true;
      this.tsRecent = options.timestamp.value;
    }
    this.cc = createCongestionControl(this.config.congestion, this.effectiveMss);
  }

  private onSegmentInSynSent(seg: TcpRepr): void {
    const flags = seg.flags;
    const ackOk = (flags & ACK) !== 0 && seqGt(seg.ack, this.iss) && seqLe(seg.ack, this.sndMax);
    if (flags & ACK && !ackOk) {
      if (!(flags & RST)) this.resetReply = this.replySegment(seg.ack, 0, RST);
      return;
    }
    if (flags & RST) {
      if (ackOk) this.enterClosed('refused');
      return;
    }
    if (!(flags & SYN)) return;
    this.irs = seg.seq >>> 0;
    this.rcvNxt = seqAdd(this.irs, 1);
    this.lastAckSent = this.rcvNxt;
    this.rcvAdvRight = seqAdd(this.rcvNxt, this.synWindow);
    this.negotiate(seg.options);
    this.sndWnd = seg.window;
    this.maxSndWnd = seg.window;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.ackNow = true;
    if (ackOk) {
      this.sndUna = seg.ack;
      this.synAcked = true;
      this.retries = 0;
      this.rtt.resetBackoff();
      this.rtoAt = Number.POSITIVE_INFINITY;
      const ts = seg.options.timestamp;
      if (this.tsEnabled && ts !== undefined && ts.echo !== 0) this.rtt.sample(seqDiff(this.tsValue(), ts.echo));
      else if (this.rttTiming) this.rtt.sample(this.now - this.rttStart);
      this.rttTiming = false;
      this.becomeEstablished();
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 7).
      this._state = 'SYN-RECEIVED';
      this.synPending = true;
      this.rtoAt = Number.POSITIVE_INFINITY;
    }
  }

  private becomeEstablished(): void {
    this._state = this.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
    this.lastReceiveAt = this.now;
    this.pendingEvents |= EVENT_ESTABLISHED;
  }

  // ---- segment arrival (RFC 9293 §3.10.7.4) ----

  private onSegmentInTimeWait(seg: TcpRepr): void {
    if (seg.flags & RST) {
      if (seg.seq === this.rcvNxt) this.enterClosed('closed');
      return;
    }
    if (seg.flags & FIN) this.timeWaitAt = this.now + this.config.timeWaitMs;
    // Answer what occupies sequence space (a resent FIN, stray data); a bare ACK needs no answer, and
    // answering it would start an ACK loop between two TIME-WAIT ends of a simultaneous close.
    if (seg.flags & (FIN | SYN) || seg.payload.length > 0) this.ackNow = true;
  }

  private onSegmentSynchronized(seg: TcpRepr): void {
    let flags = seg.flags;
    let seq = seg.seq >>> 0;
    let payload = seg.payload;
    const ts = seg.options.timestamp;

    // PAWS (RFC 7323 §5): an old timestamp marks an old duplicate.
    if (this.tsEnabled && ts !== undefined && !(flags & RST) && seqLt(ts.value, this.tsRecent)) {
      this.ackNow = true;
      return;
    }
    // A retransmitted SYN (our SYN-ACK or ACK was lost): answer it, then treat the rest as ordinary.
    if (flags & SYN && seq === this.irs) {
      flags &= ~SYN;
      seq = seqAdd(seq, 1);
      this.ackNow = true;
    }
    if (!this.acceptable(seq, payload.length + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0))) {
      if (!(flags & RST)) this.ackNow = true;
      return;
    }
    this.lastReceiveAt = this.now;
    this.keepaliveProbes = 0;
    if (this.tsEnabled && ts !== undefined && seqLe(seq, this.lastAckSent)) this.tsRecent = ts.value;

    if (flags & RST) {
      // RFC 5961 §3: only an exact match resets; anything else in the window gets a challenge ACK.
      if (seq === this.rcvNxt) this.enterClosed('reset');
      else this.ackNow = true;
      return;
    }
    if (flags & SYN) {
      this.ackNow = true; // RFC 5961 §4 challenge ACK
      return;
    }

    // Trim to the window.
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

    if (!(flags & ACK)) return;
    if (this._state === 'SYN-RECEIVED') {
      if (!(seqGt(seg.ack, this.sndUna) && seqLe(seg.ack, this.sndMax))) {
        this.resetReply = this.replySegment(seg.ack, 0, RST);
        return;
      }
      this.becomeEstablished();
    }
    if (!this.processAck(seg, seq)) return;
    if (this._state === 'CLOSED') return;

    if (payload.length > 0 && !this.remoteFinReceived && this.isReceivingState()) this.receiveData(seq, payload);
    if (flags & FIN && this.isReceivingState()) {
      this.remoteFinSeq = seqAdd(seq, payload.length);
      this.remoteFinKnown = true;
    }
    if (this.remoteFinKnown && !this.remoteFinReceived && this.rcvNxt === this.remoteFinSeq) this.receiveFin();
  }

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

  private isReceivingState(): boolean {
    const s = this._state;
    return s === 'ESTABLISHED' || s === 'FIN-WAIT-1' || s === 'FIN-WAIT-2';
  }

  /** Returns false when the segment must be dropped. */
  private processAck(seg: TcpRepr, seq: number): boolean {
    const ack = seg.ack >>> 0;
    if (seqGt(ack, this.sndMax)) {
      this.ackNow = true;
      return false;
    }
    const sack = seg.options.sack;
    if (this.sackEnabled && sack !== undefined) {
      for (const [left, right] of sack) {
        if (seqGt(right, ack) && seqLe(right, this.sndMax) && seqLt(left, right)) {
          this.scoreboard.add(seqMax(left >>> 0, ack), right >>> 0);
        }
      }
    }
    const window = seg.window * 2 ** this.sndShift;
    if (seqGt(ack, this.sndUna)) {
      this.onNewAck(ack, seg);
    } else if (
      ack === this.sndUna &&
      seg.payload.length === 0 &&
      !(seg.flags & (SYN | FIN)) &&
      this.sndMax !== this.sndUna &&
      (window === this.sndWnd || sack !== undefined)
    ) {
      this.onDuplicateAck();
    }
    if (this.sackEnabled) this.checkSackLoss();
    if (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = window;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      if (window > this.maxSndWnd) this.maxSndWnd = window;
    }
    return true;
  }

  private onNewAck(ack: number, seg: TcpRepr): void {
    let acked = seqDiff(ack, this.sndUna);
    const dataEnd = this.dataEnd();
    if (!this.synAcked) {
      this.synAcked = true;
      acked -= 1;
    }
    let finNowAcked = false;
    if (this.finQueued && !this.finAcked && seqGt(ack, dataEnd)) {
      this.finAcked = true;
      finNowAcked = true;
      acked -= 1;
    }
    if (acked > 0) {
      this.sendBuffer.consume(acked);
      this.sndBufSeq = seqAdd(this.sndBufSeq, acked);
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.scoreboard.removeBelow(ack);

    const ts = seg.options.timestamp;
    if (this.tsEnabled && ts !== undefined && ts.echo !== 0) {
      const sample = seqDiff(this.tsValue(), ts.echo);
      if (sample >= 0) this.rtt.sample(sample);
    } else if (this.rttTiming && seqGe(ack, this.rttSeq)) {
      this.rtt.sample(this.now - this.rttStart);
    }
    if (this.rttTiming && seqGe(ack, this.rttSeq)) this.rttTiming = false;
    this.retries = 0;
    this.rtt.resetBackoff();
    this.dupAcks = 0;

    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.inflation = 0;
        this.cc.onRecoveryEnd();
      } else if (this.sackEnabled) {
        if (seqLt(this.retransmitNext, ack)) this.retransmitNext = ack;
      } else {
        // Partial ACK (RFC 6582 §3.2 step 5): resend the next hole, deflate by what left the network.
        this.fastRetransmitPending = true;
        this.inflation = Math.max(0, this.inflation - acked) + this.effectiveMss;
      }
    } else {
      this.cc.onAck(acked, this.now);
      // Keep `recover` near sndUna so the RFC 6582 comparison stays valid after 2^31 bytes.
      if (seqGt(ack, this.recover)) this.recover = ack;
    }
    this.rtoAt = this.sndUna === this.sndMax ? Number.POSITIVE_INFINITY : this.now + this.rtt.rto;

    if (this.writeBlocked && this.sendBuffer.free > 0) {
      this.writeBlocked = false;
      this.pendingEvents |= EVENT_WRITABLE;
    }
    if (finNowAcked) {
      if (this._state === 'FIN-WAIT-1') this._state = 'FIN-WAIT-2';
      else if (this._state === 'CLOSING') this.enterTimeWait();
      else if (this._state === 'LAST-ACK') this.enterClosed('closed');
    }
  }

  private onDuplicateAck(): void {
    this.dupAcks++;
    if (this.inRecovery) {
      if (!this.sackEnabled) this.inflation += this.effectiveMss;
      return;
    }
    if (this.dupAcks >= DUP_ACK_THRESHOLD && seqGe(this.sndUna, this.recover)) this.enterRecovery();
  }

  /** RFC 6675 IsLost(SND.UNA): enough bytes SACKed above the first unacknowledged one, whether or not the
   *  ACKs were duplicates (a batch of segments may be answered by one ACK). */
  private checkSackLoss(): void {
    if (
      !this.inRecovery &&
      this.sndMax !== this.sndUna &&
      this.scoreboard.sackedBytes >= DUP_ACK_THRESHOLD * this.effectiveMss &&
      seqGe(this.sndUna, this.recover)
    ) {
      this.enterRecovery();
    }
  }

  private enterRecovery(): void {
    this.inRecovery = true;
    this.recover = this.sndMax;
    this.cc.onCongestionEvent(seqDiff(this.sndMax, this.sndUna), this.now);
    this.inflation = this.sackEnabled ? 0 : DUP_ACK_THRESHOLD * this.effectiveMss;
    this.fastRetransmitPending = true;
    this.retransmitNext = this.sndUna;
    this.rttTiming = false;
  }

  private receiveData(seq: number, payload: Buffer): void {
    if (seq === this.rcvNxt) {
      this.receiveQueue.push(payload);
      this.rcvNxt = seqAdd(this.rcvNxt, payload.length);
      if (!this.assembler.isEmpty) {
        this.rcvNxt = this.assembler.drainInto(this.rcvNxt, this.receiveQueue);
        this.ackNow = true; // a hole was filled: tell the sender at once (RFC 5681 §4.2)
      }
      this.pendingEvents |= EVENT_READABLE;
      this.unackedBytes += payload.length;
      if (payload.length > this.rcvMss) this.rcvMss = Math.min(payload.length, this.config.mss);
      if (this.config.delayedAckMs === 0 || this.unackedBytes >= 2 * this.rcvMss) {
        this.ackNow = true;
      } else if (this.delayedAckAt === Number.POSITIVE_INFINITY) {
        this.delayedAckAt = this.now + this.config.delayedAckMs;
      }
    } else {
      // Beyond a hole: keep it if the bounds allow, and send a duplicate ACK with SACK blocks either way.
      this.assembler.insert(seq, payload);
      this.ackNow = true;
      this.duplicateAcksOwed++;
    }
  }

  private receiveFin(): void {
    this.remoteFinReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ackNow = true;
    this.pendingEvents |= EVENT_REMOTE_CLOSED;
    if (this._state === 'ESTABLISHED') this._state = 'CLOSE-WAIT';
    else if (this._state === 'FIN-WAIT-1') this._state = this.finAcked ? 'TIME-WAIT' : 'CLOSING';
    else if (this._state === 'FIN-WAIT-2') this._state = 'TIME-WAIT';
    if (this._state === 'TIME-WAIT') this.enterTimeWait();
  }

  // ---- output ----

  private transmitByState(now: number, emit: (seg: TcpRepr) => void): void {
    switch (this._state) {
      case 'CLOSED':
        return;
      case 'TIME-WAIT':
        if (now >= this.timeWaitAt) this.enterClosed('closed');
        else if (this.ackNow) emit(this.controlSegment(this.sndMax, ACK));
        return;
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
        this.transmitHandshake(now, emit);
        return;
      default:
        break;
    }
    if (!this.runTimers(now, emit)) return;
    this.sackBlocks = this.sackEnabled && !this.assembler.isEmpty ? this.assembler.sackBlocks(this.tsEnabled ? 3 : 4) : null;
    let extraDuplicates = Math.min(this.duplicateAcksOwed, DUP_ACK_THRESHOLD + 1) - 1;
    this.duplicateAcksOwed = 0;
    let guard = 0;
    while (this.planSend() && guard++ < 100_000) this.emitPlanned(now, emit);
    if (this.ackNow) emit(this.controlSegment(this.sndMax, ACK));
    while (extraDuplicates-- > 0) emit(this.controlSegment(this.sndMax, ACK));
    this.updatePersistTimer(now);
  }

  private transmitHandshake(now: number, emit: (seg: TcpRepr) => void): void {
    if (!this.accepted) return;
    if (now >= this.rtoAt) {
      if (this.retries >= this.config.synRetries) {
        if (this._state === 'SYN-RECEIVED') emit(this.rstSegment());
        this.enterClosed('timeout');
        return;
      }
      this.retries++;
      this.rtt.backoff();
      this.synPending = true;
      this.rttTiming = false;
    }
    if (!this.synPending && !this.ackNow) return;
    const passive = this._state === 'SYN-RECEIVED';
    const options: TcpOptions = { mss: this.config.mss };
    const offerAll = !passive;
    if (offerAll ? this.config.windowScaling : this.wsEnabled) options.windowScale = this.rcvShift;
    if (this.config.sack && (offerAll || this.sackEnabled)) options.sackPermitted = true;
    if (this.config.timestamps && (offerAll || this.tsEnabled)) {
      options.timestamp = { value: this.tsValue(), echo: passive ? this.tsRecent : 0 };
    }
    const window = Math.min(this.receiveWindow(), 0xffff);
    this.synWindow = window;
    emit({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: this.iss,
      ack: passive ? this.rcvNxt : 0,
      flags: passive ? SYN | ACK : SYN,
      window,
      urgent: 0,
      options,
      payload: EMPTY,
    });
    this.rcvAdvRight = seqAdd(this.rcvNxt, window);
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.synPending = false;
    this.ackNow = false;
    if (this.rtoAt === Number.POSITIVE_INFINITY || now >= this.rtoAt) {
      this.rtoAt = now + this.rtt.rto;
      if (this.retries === 0) {
        this.rttTiming = true;
        this.rttSeq = this.sndNxt;
        this.rttStart = now;
      }
    }
  }

  /** Fires due timers. Returns false when the connection ended. */
  private runTimers(now: number, emit: (seg: TcpRepr) => void): boolean {
    if (now >= this.rtoAt) {
      if (this.retries >= this.config.maxRetransmissions) {
        emit(this.rstSegment());
        this.enterClosed('timeout');
        return false;
      }
      this.onRetransmitTimeout();
    }
    if (now >= this.delayedAckAt) this.ackNow = true;
    if (now >= this.persistAt) {
      // Zero-window probe: an already-acknowledged sequence number makes the peer answer with its window.
      emit(this.controlSegment(seqAdd(this.sndUna, -1), ACK));
      this.persistBackoff++;
      this.persistAt = Number.POSITIVE_INFINITY;
    }
    if (now >= this.keepaliveAt()) {
      const keepalive = this.config.keepalive;
      if (keepalive === null || this.keepaliveProbes >= keepalive.probes) {
        emit(this.rstSegment());
        this.enterClosed('timeout');
        return false;
      }
      this.keepaliveProbes++;
      emit(this.controlSegment(seqAdd(this.sndUna, -1), ACK));
    }
    return true;
  }

  private onRetransmitTimeout(): void {
    this.retries++;
    this.rtt.backoff();
    this.cc.onRetransmitTimeout(seqDiff(this.sndMax, this.sndUna));
    this.inRecovery = false;
    this.inflation = 0;
    this.fastRetransmitPending = false;
    this.recover = this.sndMax;
    this.dupAcks = 0;
    // The peer may have reneged on SACKed data: trust the scoreboard for one timeout only (RFC 2018 §8).
    if (this.retries > 1) this.scoreboard.clear();
    this.sndNxt = this.sndUna;
    this.forceSend = true;
    this.rttTiming = false;
    this.rtoAt = Number.POSITIVE_INFINITY;
  }

  private keepaliveAt(): number {
    const k = this.config.keepalive;
    if (k === null || this.sndMax !== this.sndUna) return Number.POSITIVE_INFINITY;
    if (this._state !== 'ESTABLISHED' && this._state !== 'CLOSE-WAIT') return Number.POSITIVE_INFINITY;
    return this.lastReceiveAt + k.idleMs + this.keepaliveProbes * k.intervalMs;
  }

  private updatePersistTimer(now: number): void {
    const stalled = this.sndMax === this.sndUna && seqLt(this.sndNxt, this.dataEnd()) && this.sndWnd === 0;
    if (!stalled) {
      this.persistAt = Number.POSITIVE_INFINITY;
      this.persistBackoff = 0;
    } else if (this.persistAt === Number.POSITIVE_INFINITY) {
      this.persistAt = now + Math.min(this.rtt.rto * 2 ** this.persistBackoff, this.config.maxRtoMs);
    }
  }

  private dataEnd(): number {
    return seqAdd(this.sndBufSeq, this.sendBuffer.length);
  }

  /** Bytes believed in the network (RFC 6675 pipe, simplified: SACK holes below the highest SACK are lost
   *  unless retransmitted in this recovery). */
  private pipe(): number {
    if (!this.sackEnabled || this.scoreboard.isEmpty) return seqDiff(this.sndNxt, this.sndUna);
    if (!this.inRecovery) {
      return seqDiff(this.sndNxt, this.sndUna) - this.scoreboard.sackedBetween(this.sndUna, this.sndNxt);
    }
    const high = seqMax(this.scoreboard.highest(this.sndUna), this.sndUna);
    const beyond = seqGt(this.sndNxt, high) ? seqDiff(this.sndNxt, high) : 0;
    const retransmitted = seqGt(this.retransmitNext, this.sndUna)
      ? seqDiff(this.retransmitNext, this.sndUna) - this.scoreboard.sackedBetween(this.sndUna, this.retransmitNext)
      : 0;
    return beyond + retransmitted;
  }

  private segmentLimit(): number {
    const mss = this.effectiveMss;
    const max = this.config.sendSegmentMax > 0 ? this.config.sendSegmentMax : mss;
    const blocks = this.sackBlocks;
    if (blocks === null || max > mss) return max;
    return Math.max(1, max - ((2 + 8 * blocks.length + 3) & ~3));
  }

  /** Chooses the next segment to send (into plan*), without side effects. */
  private planSend(): boolean {
    const s = this._state;
    if (s !== 'ESTABLISHED' && s !== 'CLOSE-WAIT' && s !== 'FIN-WAIT-1' && s !== 'CLOSING' && s !== 'LAST-ACK') {
      return false;
    }
    const dataEnd = this.dataEnd();
    const limit = this.segmentLimit();
    const finSeqSent = this.finQueued && seqGt(this.sndMax, dataEnd);

    if (this.fastRetransmitPending) {
      const seq = this.sndUna;
      const sentEnd = seqLt(this.sndMax, dataEnd) ? this.sndMax : dataEnd;
      const end = this.sackEnabled ? this.scoreboard.nextSackedAfter(seq, sentEnd) : sentEnd;
      this.planKind = SEND_FAST_RETRANSMIT;
      this.planSeq = seq;
      this.planLen = Math.max(0, Math.min(limit, seqDiff(end, seq)));
      this.planFin = finSeqSent && seqAdd(seq, this.planLen) === dataEnd;
      if (this.planLen > 0 || this.planFin) return true;
    }

    const pipe = this.pipe();
    const cwnd = Math.floor(this.cc.cwnd + this.inflation);
    if (this.inRecovery && this.sackEnabled && pipe < cwnd) {
      const high = this.scoreboard.highest(this.sndUna);
      let seq = seqMax(this.retransmitNext, this.sndUna);
      seq = this.scoreboard.skipSacked(seq);
      if (seqLt(seq, high) && seqLt(seq, dataEnd)) {
        const end = this.scoreboard.nextSackedAfter(seq, seqLt(high, dataEnd) ? high : dataEnd);
        this.planKind = SEND_HOLE;
        this.planSeq = seq;
        this.planLen = Math.min(limit, seqDiff(end, seq), Math.max(cwnd - pipe, this.effectiveMss));
        this.planFin = false;
        if (this.planLen > 0) return true;
      }
    }

    let seq = this.sndNxt;
    if (seqLt(seq, this.sndMax) && this.sackEnabled) seq = this.scoreboard.skipSacked(seq);
    const avail = seqDiff(dataEnd, seq);
    if (avail > 0) {
      const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), seq);
      let room = Math.min(wndRoom, cwnd - pipe);
      if (this.forceSend) room = Math.max(room, Math.min(avail, this.effectiveMss));
      let len = Math.min(avail, limit, room);
      if (seqLt(seq, this.sndMax) && this.sackEnabled) {
        len = Math.min(len, seqDiff(this.scoreboard.nextSackedAfter(seq, dataEnd), seq));
      }
      if (len > 0) {
        // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) without Nagle: a partial segment only when it empties
        // the buffer, fills half the largest window seen, or nothing is in flight.
        const swsBlocked = len < avail && len < this.effectiveMss && pipe > 0 && len < this.maxSndWnd / 2;
        if (!swsBlocked || this.forceSend) {
          this.planKind = SEND_DATA;
          this.planSeq = seq;
          this.planLen = len;
          this.planFin = this.finQueued && len === avail;
          return true;
        }
      }
      return false;
    }
    if (this.finQueued && seq === dataEnd && !this.finAcked && !seqGt(this.sndNxt, dataEnd)) {
      this.planKind = SEND_DATA;
      this.planSeq = seq;
      this.planLen = 0;
      this.planFin = true;
      return true;
    }
    return false;
  }

  private emitPlanned(now: number, emit: (seg: TcpRepr) => void): void {
    const seq = this.planSeq;
    const len = this.planLen;
    const end = seqAdd(seq, len + (this.planFin ? 1 : 0));
    const payload = this.sendBuffer.peek(seqDiff(seq, this.sndBufSeq), len);
    emit(this.dataSegment(seq, payload, this.planFin ? ACK | FIN : ACK));
    const isRetransmission = seqLt(seq, this.sndMax);
    if (isRetransmission && this.rttTiming && seqGt(this.rttSeq, seq)) this.rttTiming = false; // Karn
    switch (this.planKind) {
      case SEND_FAST_RETRANSMIT:
        this.fastRetransmitPending = false;
        this.retransmitNext = seqMax(this.retransmitNext, end);
        break;
      case SEND_HOLE:
        this.retransmitNext = end;
        break;
      case SEND_DATA:
        this.forceSend = false;
        this.sndNxt = end;
        if (seqGt(end, this.sndMax)) {
          if (!this.rttTiming && !this.tsEnabled && !isRetransmission) {
            this.rttTiming = true;
            this.rttSeq = end;
            this.rttStart = now;
          }
          this.sndMax = end;
        }
        break;
    }
    if (this.rtoAt === Number.POSITIVE_INFINITY) this.rtoAt = now + this.rtt.rto;
  }

  // ---- segments ----

  private dataSegment(seq: number, payload: Buffer, flags: number): TcpRepr {
    const seg = this.controlSegment(seq, flags);
    seg.payload = payload;
    return seg;
  }

  /** A segment carrying our current ACK and window; sending it satisfies any pending ACK. */
  private controlSegment(seq: number, flags: number): TcpRepr {
    const options: TcpOptions = {};
    if (this.tsEnabled) options.timestamp = { value: this.tsValue(), echo: this.tsRecent };
    if (this.sackBlocks !== null) options.sack = this.sackBlocks;
    const window = this.advertiseWindow();
    this.ackNow = false;
    this.delayedAckAt = Number.POSITIVE_INFINITY;
    this.unackedBytes = 0;
    this.lastAckSent = this.rcvNxt;
    return {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: this.rcvNxt,
      flags,
      window,
      urgent: 0,
      options,
      payload: EMPTY,
    };
  }

  private rstSegment(): TcpRepr {
    if (this._state === 'SYN-RECEIVED' && !this.accepted) {
      // Nothing was sent yet: answer the SYN as a closed port would.
      return this.replySegment(0, this.rcvNxt, RST | ACK);
    }
    return this.replySegment(this.sndMax, this.rcvNxt, RST | ACK);
  }

  private replySegment(seq: number, ack: number, flags: number): TcpRepr {
    return {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack,
      flags,
      window: 0,
      urgent: 0,
      options: {},
      payload: EMPTY,
    };
  }

  private tsValue(): number {
    return (Math.floor(this.now) + this.tsOffset) >>> 0;
  }

  // ---- receive window ----

  /** Free receive space, capped. */
  private receiveWindow(): number {
    const free = Math.max(0, this.config.recvBufferSize - this.receiveQueue.bytes);
    return Math.min(free, this.config.maxAdvertisedWindow, 0xffff * 2 ** this.rcvShift);
  }

  /** Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): move the right edge only by a worthwhile amount. */
  private windowUpdateWorthSending(): boolean {
    const newRight = seqAdd(this.rcvNxt, this.receiveWindow());
    const threshold = Math.min(this.config.recvBufferSize / 2, this.config.mss);
    return seqDiff(newRight, this.rcvAdvRight) >= threshold;
  }

  /** The window field for the next segment; records the advertised right edge. */
  private advertiseWindow(): number {
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

  // ---- endings ----

  private isSynchronized(): boolean {
    return this._state !== 'SYN-SENT' && this._state !== 'SYN-RECEIVED' && this._state !== 'CLOSED';
  }

  private enterTimeWait(): void {
    this._state = 'TIME-WAIT';
    this.timeWaitAt = this.now + this.config.timeWaitMs;
    this.rtoAt = Number.POSITIVE_INFINITY;
    this.persistAt = Number.POSITIVE_INFINITY;
    this.delayedAckAt = Number.POSITIVE_INFINITY;
  }

  private enterClosed(reason: TcpCloseReason): void {
    if (this.closeReason !== null) return;
    this._state = 'CLOSED';
    this.closeReason = reason;
    this.rtoAt = Number.POSITIVE_INFINITY;
    this.persistAt = Number.POSITIVE_INFINITY;
    this.delayedAckAt = Number.POSITIVE_INFINITY;
    this.timeWaitAt = Number.POSITIVE_INFINITY;
    this.ackNow = false;
    this.sendBuffer.consume(this.sendBuffer.length);
  }

  private flushEvents(): void {
    const pending = this.pendingEvents;
    this.pendingEvents = 0;
    const ev = this.events;
    if (pending & EVENT_ESTABLISHED) ev.established?.();
    if (pending & EVENT_READABLE) ev.readable?.();
    if (pending & EVENT_WRITABLE) ev.writable?.();
    if (pending & EVENT_REMOTE_CLOSED) ev.remoteClosed?.();
    if (this.closeReason !== null && !this.closedReported) {
      this.closedReported = true;
      ev.closed?.(this.closeReason);
    }
  }
}
