// One TCP connection (RFC 9293) as a state machine with no I/O: segments come in through handleSegment, go
// out through transmit, and the clock is an argument. This file owns the state, the handshake, the dispatch
// of arriving segments, the endings and the events; as in gVisor's tcpip/transport/tcp, the sender
// (tcp-sender.ts), the receiver (tcp-receiver.ts) and the timers (tcp-timers.ts) own the rest. The stack
// owns demultiplexing, checksums and packets.

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import type { TcpConfig } from './tcp-config.js';
import {
  Handshake,
  SYN_SENT_BAD_ACK,
  SYN_SENT_ESTABLISHED,
  SYN_SENT_REFUSED,
  SYN_SENT_SIMULTANEOUS,
} from './tcp-handshake.js';
import { TcpOutput } from './tcp-output.js';
import { ADMIT_OK, ADMIT_RESET, TcpReceiver } from './tcp-receiver.js';
import { SegmentBuilder } from './tcp-segments.js';
import { ACK_DROP, ACK_FIN_ACKED, ACK_WRITABLE, TcpSender } from './tcp-sender.js';
import { seqAdd, seqGt, seqLe } from './tcp-seq.js';
import type { TcpCloseReason, TcpConnectionEvents, TcpState } from './tcp-state.js';
import { PHASE_HANDSHAKE, PHASE_SYNCHRONIZED, PHASE_TIME_WAIT, TcpTimers } from './tcp-timers.js';

export type { TcpCloseReason, TcpConnectionEvents, TcpState } from './tcp-state.js';

const { FIN, SYN, RST, ACK } = TcpFlags;
const NEVER = Number.POSITIVE_INFINITY;

const EVENT_ESTABLISHED = 1;
const EVENT_READABLE = 2;
const EVENT_WRITABLE = 4;
const EVENT_REMOTE_CLOSED = 8;

export class TcpConnection {
  events: TcpConnectionEvents = {};
  readonly localPort: number;
  readonly remotePort: number;

  private readonly config: TcpConfig;
  private _state: TcpState;
  private accepted: boolean;
  private readonly timers: TcpTimers;
  private readonly snd: TcpSender;
  private readonly rcv: TcpReceiver;
  private readonly out: SegmentBuilder;
  private readonly output: TcpOutput;
  private readonly handshake: Handshake;

  // Ending.
  private abortPending = false;
  private resetPending: { reason: TcpCloseReason } | null = null;
  private resetReply: TcpRepr | null = null;
  private closeReason: TcpCloseReason | null = null;
  private closedReported = false;
  private pendingEvents = 0;

  private constructor(localPort: number, remotePort: number, iss: number, now: number, config: TcpConfig, state: TcpState) {
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.config = config;
    this._state = state;
    this.accepted = state === 'SYN-SENT';
    this.timers = new TcpTimers(config, now);
    this.snd = new TcpSender(config, this.timers, iss);
    this.rcv = new TcpReceiver(config, this.timers);
    this.out = new SegmentBuilder(localPort, remotePort, config, this.rcv, this.snd.iss, now);
    this.handshake = new Handshake(config, this.timers, this.snd, this.rcv, this.out);
    this.output = new TcpOutput(config, this.timers, this.snd, this.rcv, this.out);
  }

  /** Passive open, two-phase: state SYN-RECEIVED, but nothing is sent until accept(). */
  static fromSyn(syn: TcpRepr, iss: number, now: number, config: TcpConfig): TcpConnection {
    const c = new TcpConnection(syn.dstPort, syn.srcPort, iss, now, config, 'SYN-RECEIVED');
    c.rcv.synchronize(syn.seq);
    c.out.negotiate(syn.options, c.snd);
    c.snd.initWindow(syn.window, syn.seq, 0);
    return c;
  }

  /** Active open: SYN-SENT; transmit() emits the SYN. */
  static connect(localPort: number, remotePort: number, iss: number, now: number, config: TcpConfig): TcpConnection {
    const c = new TcpConnection(localPort, remotePort, iss, now, config, 'SYN-SENT');
    c.handshake.synPending = true;
    return c;
  }

  /** The caller's clock at the current call (the segment builder stamps timestamps with it). */
  private get now(): number {
    return this.out.now;
  }

  private set now(now: number) {
    this.out.now = now;
  }

  get state(): TcpState {
    return this._state;
  }

  /** Payload bytes per MSS-sized packet towards the peer, for the segments being emitted (what the device
   *  segments at): min(peer MSS, our MSS, path MSS) less the timestamp and SACK option bytes they carry. */
  get effectiveMss(): number {
    return Math.max(1, this.snd.mss - this.rcv.sackOptionBytes);
  }

  get sendBuffered(): number {
    return this.snd.buffer.length;
  }

  get recvBuffered(): number {
    return this.rcv.queue.bytes;
  }

  /** SYN-ACK goes out on the next transmit(). */
  accept(now: number): void {
    if (this._state !== 'SYN-RECEIVED' || this.accepted) return;
    this.now = now;
    this.accepted = true;
    this.handshake.synPending = true;
    this.timers.lastReceiveAt = now;
  }

  write(data: Buffer): number {
    if (this.snd.finQueued || this.closeReason !== null || this.abortPending) return 0;
    const n = this.snd.write(data);
    // Data written into a closed window must start the persist timer, or nothing would ever probe.
    if (n > 0 && this.isSynchronized()) this.output.updatePersistTimer(this.now);
    return n;
  }

  read(): Buffer | null {
    return this.rcv.read(this.isSynchronized());
  }

  /** FIN after everything written. */
  end(): void {
    if (this.snd.finQueued || this.closeReason !== null) return;
    this.snd.finQueued = true;
    if (this._state === 'ESTABLISHED') this._state = 'FIN-WAIT-1';
    else if (this._state === 'CLOSE-WAIT') this._state = 'LAST-ACK';
  }

  /** RST on the next transmit, then CLOSED ('aborted'). */
  abort(): void {
    if (this.closeReason === null) this.abortPending = true;
  }

  /** ICMP said the path towards the peer takes at most `mss` bytes of TCP payload plus header options. */
  pathMtuChanged(mss: number): void {
    this.snd.pathMtuChanged(mss);
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
    return this.snd.inFlight(seq >>> 0, this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED');
  }

  /** A SYN for this connection's 4-tuple may start a new incarnation (RFC 6191): only in TIME-WAIT, and only
   *  when its timestamp, or without timestamps its ISN, is newer than what this incarnation saw. */
  acceptsNewSyn(seg: TcpRepr): boolean {
    return this._state === 'TIME-WAIT' && (seg.flags & (SYN | ACK | RST)) === SYN && this.rcv.isNewer(seg, this.out.tsEnabled);
  }

  /** When transmit() has work: now, or the earliest timer. Changes nothing. */
  pollAt(): number {
    if (this._state === 'CLOSED') return this.closedReported ? NEVER : this.now;
    if (this.abortPending || this.resetPending !== null || this.resetReply !== null) return this.now;
    if (this._state === 'TIME-WAIT') return this.rcv.ackNow ? this.now : this.timers.next(PHASE_TIME_WAIT, false);
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') {
      if (!this.accepted) return NEVER;
      if (this.handshake.synPending || this.rcv.ackNow) return this.now;
      return this.timers.next(PHASE_HANDSHAKE, false);
    }
    if (this.rcv.ackNow || (this.canSend() && this.output.hasSegmentToSend())) return this.now;
    return this.timers.next(PHASE_SYNCHRONIZED, this.keepaliveIdle());
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


  private onSegmentInSynSent(seg: TcpRepr): void {
    switch (this.handshake.onSegmentInSynSent(seg, this.now)) {
      case SYN_SENT_BAD_ACK:
        this.resetReply = this.out.reply(seg.ack, 0, RST);
        break;
      case SYN_SENT_REFUSED:
        this.enterClosed('refused');
        break;
      case SYN_SENT_ESTABLISHED:
        this.becomeEstablished();
        break;
      case SYN_SENT_SIMULTANEOUS:
        this._state = 'SYN-RECEIVED';
        break;
    }
  }

  private becomeEstablished(): void {
    this._state = this.snd.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
    this.timers.lastReceiveAt = this.now;
    this.pendingEvents |= EVENT_ESTABLISHED;
  }

  private transmitHandshake(now: number, emit: (seg: TcpRepr) => void): void {
    if (!this.accepted || this.handshake.transmit(now, this._state === 'SYN-RECEIVED', emit)) return;
    if (this._state === 'SYN-RECEIVED') emit(this.rstSegment());
    this.enterClosed('timeout');
  }


  private onSegmentInTimeWait(seg: TcpRepr): void {
    if (seg.flags & RST) {
      if (seg.seq === this.rcv.rcvNxt) this.enterClosed('closed');
      return;
    }
    if (seg.flags & FIN) this.timers.timeWaitAt = this.now + this.config.timeWaitMs;
    // Answer what occupies sequence space (a resent FIN, stray data); a bare ACK needs no answer, and
    // answering it would start an ACK loop between two TIME-WAIT ends of a simultaneous close.
    if (seg.flags & (FIN | SYN) || seg.payload.length > 0) this.rcv.ackNow = true;
  }

  private onSegmentSynchronized(seg: TcpRepr): void {
    const rcv = this.rcv;
    const admitted = rcv.admit(seg, this.out.tsEnabled, this.now);
    if (admitted === ADMIT_RESET) this.enterClosed('reset');
    if (admitted !== ADMIT_OK) return;
    const flags = rcv.segFlags;
    const seq = rcv.segSeq;
    const payload = rcv.segPayload;
    if (!(flags & ACK)) return;
    if (this._state === 'SYN-RECEIVED') {
      if (!(seqGt(seg.ack, this.snd.sndUna) && seqLe(seg.ack, this.snd.sndMax))) {
        this.resetReply = this.out.reply(seg.ack, 0, RST);
        return;
      }
      this.becomeEstablished();
    }
    const acked = this.snd.processAck(seg, seq, this.out.echoRtt(seg), this.now);
    if (acked & ACK_DROP) {
      rcv.ackNow = true;
      return;
    }
    if (acked & ACK_WRITABLE) this.pendingEvents |= EVENT_WRITABLE;
    if (acked & ACK_FIN_ACKED) {
      if (this._state === 'FIN-WAIT-1') this._state = 'FIN-WAIT-2';
      else if (this._state === 'CLOSING') this.enterTimeWait();
      else if (this._state === 'LAST-ACK') this.enterClosed('closed');
    }
    if (this._state === 'CLOSED') return;

    if (payload.length > 0 && !rcv.remoteFinReceived && this.isReceivingState()) {
      if (rcv.receiveData(seq, payload, this.now)) this.pendingEvents |= EVENT_READABLE;
    }
    if (flags & FIN && this.isReceivingState()) {
      rcv.remoteFinSeq = seqAdd(seq, payload.length);
      rcv.remoteFinKnown = true;
    }
    if (rcv.remoteFinKnown && !rcv.remoteFinReceived && rcv.rcvNxt === rcv.remoteFinSeq) this.receiveFin();
  }

  private isReceivingState(): boolean {
    const s = this._state;
    return s === 'ESTABLISHED' || s === 'FIN-WAIT-1' || s === 'FIN-WAIT-2';
  }

  private receiveFin(): void {
    this.rcv.receiveFin();
    this.pendingEvents |= EVENT_REMOTE_CLOSED;
    if (this._state === 'ESTABLISHED') this._state = 'CLOSE-WAIT';
    else if (this._state === 'FIN-WAIT-1') this._state = this.snd.finAcked ? 'TIME-WAIT' : 'CLOSING';
    else if (this._state === 'FIN-WAIT-2') this._state = 'TIME-WAIT';
    if (this._state === 'TIME-WAIT') this.enterTimeWait();
  }


  private transmitByState(now: number, emit: (seg: TcpRepr) => void): void {
    switch (this._state) {
      case 'CLOSED':
        return;
      case 'TIME-WAIT':
        if (now >= this.timers.timeWaitAt) this.enterClosed('closed');
        else if (this.rcv.ackNow) emit(this.out.control(this.snd.sndMax, ACK));
        return;
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
        this.transmitHandshake(now, emit);
        return;
      default:
        break;
    }
    if (!this.output.transmit(now, this.canSend(), this.keepaliveIdle(), emit)) this.enterClosed('timeout');
  }

  private canSend(): boolean {
    const s = this._state;
    return s === 'ESTABLISHED' || s === 'CLOSE-WAIT' || s === 'FIN-WAIT-1' || s === 'CLOSING' || s === 'LAST-ACK';
  }

  /** Keepalive applies to an open connection with nothing in flight. */
  private keepaliveIdle(): boolean {
    const s = this._state;
    return this.snd.sndMax === this.snd.sndUna && (s === 'ESTABLISHED' || s === 'CLOSE-WAIT');
  }


  private rstSegment(): TcpRepr {
    if (this._state === 'SYN-RECEIVED' && !this.accepted) {
      // Nothing was sent yet: answer the SYN as a closed port would.
      return this.out.reply(0, this.rcv.rcvNxt, RST | ACK);
    }
    return this.out.reply(this.snd.sndMax, this.rcv.rcvNxt, RST | ACK);
  }


  private isSynchronized(): boolean {
    return this._state !== 'SYN-SENT' && this._state !== 'SYN-RECEIVED' && this._state !== 'CLOSED';
  }

  private enterTimeWait(): void {
    this._state = 'TIME-WAIT';
    this.timers.enterTimeWait(this.now);
    // Everything up to the FIN arrived: TIME-WAIT's ACKs report no SACK blocks.
    this.rcv.sackBlocks = null;
  }

  private enterClosed(reason: TcpCloseReason): void {
    if (this.closeReason !== null) return;
    this._state = 'CLOSED';
    this.closeReason = reason;
    this.timers.stopAll();
    this.rcv.ackNow = false;
    this.snd.buffer.consume(this.snd.buffer.length);
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
