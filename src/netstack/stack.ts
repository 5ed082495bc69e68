// The user-space network stack: IP packets in, IP packets and a deadline out. It does no I/O and reads no clock:
// the driver hands it packets with the time, asks it for output, and calls it again at pollAt(). Every TCP
// destination is accepted as a catch-all, in two phases: a SYN is held while the application decides, and only
// an accept sends the SYN-ACK, so a refused destination gets a real RST and an unreachable one an ICMP error.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { DeadlineQueue } from './deadline-queue.js';
import { flowKey, type Endpoint } from './endpoint.js';
import { FragmentReassembler, type ReassemblyLimits } from './ip-reassembly.js';
import { PacketArena } from './packet-arena.js';
import { PacketBuilder } from './packet-builder.js';
import { tcpConfig, type TcpConfig } from './tcp/tcp-config.js';
import { TcpConnection } from './tcp/tcp-connection.js';
import { resetFor } from './tcp/tcp-reset.js';
import { TcpSocket, TcpSocketError } from './tcp-socket.js';
import { TcpSplice, type TcpSpliceObserver } from './tcp-splice.js';
import { UdpFlow, type UdpFlowHost } from './udp-flow.js';
import { pseudoHeaderSum } from './wire/checksum.js';
import { Icmpv4UnreachableCode, Icmpv6UnreachableCode, parseIcmpv4, parseIcmpv6 } from './wire/icmp.js';
import { formatIp } from './wire/ip-address.js';
import { IPV4_HEADER_LEN, parseIpv4 } from './wire/ipv4.js';
import { IPV6_HEADER_LEN, parseIpv6, parseIpv6Fragmentable } from './wire/ipv6.js';
import { IpProtocol, TcpFlags, WireError, type IcmpRepr, type IpAddress, type TcpRepr } from './wire/reprs.js';
import { parseTcp } from './wire/tcp.js';
import { parseUdp } from './wire/udp.js';
import { parseVirtioNetHdr, VIRTIO_NET_HDR_LEN, VirtioNetFlags } from './wire/virtio-net-hdr.js';

export interface StackLimits {
  /** TCP flows, TIME-WAIT ones included; at the limit a new SYN recycles the oldest TIME-WAIT flow, or is reset. */
  maxTcpFlows: number;
  /** SYNs waiting for the application's decision (the SYN-flood bound); more are dropped, and the client retries. */
  maxPendingSyns: number;
  /** A SYN not decided within this time is answered as unreachable. */
  acceptTimeoutMs: number;
  maxUdpFlows: number;
  udpIdleMs: number;
}

export interface NetStackOptions {
  /** The device MTU: TCP's MSS follows from it. */
  mtu: number;
  /** Packets in and out carry a virtio_net_hdr. */
  vnetHeader?: boolean;
  /** The kernel finishes checksums and segments large sends (requires vnetHeader). */
  offload?: boolean;
  /** Without vnetHeader: the device fills in outgoing TCP/UDP checksums (and input() is told which it checked). */
  deviceChecksum?: boolean;
  tcp?: Partial<TcpConfig>;
  limits?: Partial<StackLimits>;
  reassembly?: Partial<ReassemblyLimits>;
  /** 32-bit random numbers for initial sequence numbers; injectable for deterministic tests. */
  random32?: () => number;
}

/** A SYN that waits for the application's decision. Exactly one of the three methods may be called. */
export interface TcpConnectRequest {
  /** Where the client wants to go (the SYN's destination). */
  readonly local: Endpoint;
  /** The client. */
  readonly remote: Endpoint;
  accept(): TcpSocket;
  /** Accepts with the connection coupled straight to `stream` (see TcpSplice): what a forwarder wants. */
  acceptSplice(stream: Duplex, observer?: TcpSpliceObserver): TcpSplice;
  /** A RST: the client's connect() fails with ECONNREFUSED. */
  refuse(): void;
  /** ICMP host unreachable: the client's connect() fails with EHOSTUNREACH. */
  unreachable(): void;
}

export interface NetStackHandlers {
  tcpConnect(request: TcpConnectRequest): void;
  /** A new UDP flow; without a handler every datagram gets ICMP port unreachable. */
  udpFlow?(flow: UdpFlow): void;
  /** Whether to answer an ICMP echo request to this address. Default: no answer. */
  icmpEcho?(destination: IpAddress): boolean;
}

export interface NetStackStats {
  packetsIn: number;
  packetsOut: number;
  /**
   * Dropped input by reason: WireError codes, plus 'unsupported-protocol', 'syn-flood', 'flow-limit', 'internal'
   * (a bug of ours: the packet, or in output the connection, is dropped), and ICMP errors not acted on:
   * 'icmp-bad-quote', 'icmp-not-tcp', 'icmp-no-flow', 'icmp-not-in-flight' (RFC 5927), 'icmp-bad-mtu' (below
   * the minimum or not below the link's MTU).
   */
  dropped: Record<string, number>;
  /** ICMP destination-unreachable and packet-too-big messages received. */
  icmpErrors: number;
  /** Packet-too-big messages that lowered a connection's MSS. */
  pathMtuDecreases: number;
  /** TIME-WAIT flows ended early for a new connection at maxTcpFlows. */
  timeWaitRecycled: number;
  /** TCP flows in every state, TIME-WAIT included. */
  tcpFlows: number;
  tcpTimeWait: number;
  udpFlows: number;
  pendingSyns: number;
}

const DEFAULT_LIMITS: StackLimits = {
  maxTcpFlows: 65_536,
  maxPendingSyns: 1024,
  acceptTimeoutMs: 10_000,
  maxUdpFlows: 16_384,
  udpIdleMs: 60_000,
};
const UDP_SWEEP_MS = 1000;
/** Smaller payloads are copied behind their header: a copy that small costs less than the second iovec. */
const GATHER_MIN_BYTES = 512;
/** RFC 6335's dynamic port range, for active opens. */
const EPHEMERAL_FIRST = 49_152;
const EPHEMERAL_LAST = 65_535;
const TCP_HEADER_MAX = 60;
/** Largest segment handed to the kernel for segmentation: an IP packet is at most 64 KiB. */
const GSO_MAX_PAYLOAD = 65_535 - IPV6_HEADER_LEN - TCP_HEADER_MAX;
const TCP_HEADER_MIN = 20;
/** Smallest MTU a link may have: RFC 791's 68 bytes for IPv4, RFC 8200 §5's 1280 for IPv6. */
const MIN_MTU_V4 = 68;
const MIN_MTU_V6 = 1280;

interface TcpFlow {
  readonly key: string;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly connection: TcpConnection;
  /** Awaiting the application's decision; the SYN's IP packet is kept to quote in an ICMP error. */
  pending: { syn: TcpRepr; packet: Buffer; deadline: number } | null;
  /** Once accepted or connected; destroyed if the connection fails inside the stack. */
  socket: TcpSocket | TcpSplice | null;
  scheduledAt: number;
  /** In NetStack.dirty, i.e. due a transmit at the next output(). */
  dirty: boolean;
  /** In NetStack.timeWaitFlows. */
  timeWait: boolean;
  removed: boolean;
}

/** Initial sequence numbers from a pool of random bytes refilled 4 KiB at a time (one syscall per 1,024 SYNs). */
const randomPool = { bytes: Buffer.alloc(0), offset: 0 };
function randomUint32(): number {
  if (randomPool.offset + 4 > randomPool.bytes.length) {
    randomPool.bytes = randomBytes(4096);
    randomPool.offset = 0;
  }
  const value = randomPool.bytes.readUInt32BE(randomPool.offset);
  randomPool.offset += 4;
  return value;
}

export class NetStack implements UdpFlowHost {
  /** Called when the application created work (data to send, a decision): the driver should call output() soon. */
  onWake: () => void = () => {};
  /** A bug of ours surfaced while handling a packet: the packet is dropped and counted, the stack goes on. */
  onInternalError: (error: unknown) => void = () => {};

  private readonly builder: PacketBuilder;
  private readonly arena = new PacketArena();
  private readonly vnetHeader: boolean;
  private readonly limits: StackLimits;
  private readonly tcpConfigV4: TcpConfig;
  private readonly tcpConfigV6: TcpConfig;
  private readonly random32: () => number;
  private readonly reassembler: FragmentReassembler;
  private readonly mtu: number;
  private readonly tcpFlows = new Map<string, TcpFlow>();
  /** The flows in TIME-WAIT, oldest first (a Set iterates in insertion order): the first to recycle. */
  private readonly timeWaitFlows = new Set<TcpFlow>();
  private readonly udpFlows = new Map<string, UdpFlow>();
  /**
   * The flows due a transmit, each once (TcpFlow.dirty). An array and a flag rather than a Set: a Set that is
   * emptied on every output (one flow per request on an interactive connection) reallocates its table each time.
   */
  private readonly dirty: TcpFlow[] = [];
  private readonly deadlines = new DeadlineQueue<TcpFlow>();
  private readonly queued: Buffer[] = [];
  private pendingSyns = 0;
  private now = 0;
  private nextUdpSweep = 0;
  private out: Buffer[] = [];
  private tails: Array<Buffer | null> | null = null;
  private emittingFlow: TcpFlow | null = null;
  private readonly counters = { packetsIn: 0, packetsOut: 0, icmpErrors: 0, pathMtuDecreases: 0, timeWaitRecycled: 0 };
  private readonly dropped: Record<string, number> = {};

  constructor(
    options: NetStackOptions,
    private readonly handlers: NetStackHandlers,
  ) {
    this.vnetHeader = options.vnetHeader ?? false;
    this.mtu = options.mtu;
    const offload = this.vnetHeader && (options.offload ?? false);
    this.builder = new PacketBuilder({
      vnetHeader: this.vnetHeader,
      offload,
      deviceChecksum: options.deviceChecksum,
      allocate: (size) => this.arena.alloc(size),
    });
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.random32 = options.random32 ?? randomUint32;
    this.reassembler = new FragmentReassembler(options.reassembly);
    const configFor = (ipHeader: number): TcpConfig => {
      const mss = options.mtu - ipHeader - 20;
      // Without offload every segment is a packet: 0 cuts them at the effective MSS (the peer's MSS, the path
      // MTU's and ours, less the options), not at our own MTU's.
      return tcpConfig({ mss, sendSegmentMax: offload ? GSO_MAX_PAYLOAD : 0, ...options.tcp });
    };
    this.tcpConfigV4 = configFor(IPV4_HEADER_LEN);
    this.tcpConfigV6 = configFor(IPV6_HEADER_LEN);
  }

  get stats(): NetStackStats {
    return {
      ...this.counters,
      dropped: { ...this.dropped },
      tcpFlows: this.tcpFlows.size,
      tcpTimeWait: this.timeWaitFlows.size,
      udpFlows: this.udpFlows.size,
      pendingSyns: this.pendingSyns,
    };
  }

  /**
   * Takes one packet from the device. Malformed packets are counted and dropped; nothing here throws.
   * `checksumVerified`: the device checked the packet's TCP/UDP checksum (so it need not be summed again).
   */
  input(packet: Buffer, now: number, checksumVerified = false): void {
    this.now = now;
    this.counters.packetsIn++;
    try {
      let ip = packet;
      let checksumVouched = checksumVerified;
      if (this.vnetHeader) {
        const hdr = parseVirtioNetHdr(packet);
        checksumVouched = (hdr.flags & (VirtioNetFlags.NEEDS_CSUM | VirtioNetFlags.DATA_VALID)) !== 0;
        ip = packet.subarray(VIRTIO_NET_HDR_LEN);
      }
      if (ip.length === 0) throw new WireError('TRUNCATED', 'empty packet');
      const version = ip[0]! >> 4;
      if (version === 4) this.inputIpv4(ip, checksumVouched, now);
      else if (version === 6) this.inputIpv6(ip, checksumVouched, now);
      else throw new WireError('BAD_VERSION', `IP version ${version}`);
    } catch (error) {
      if (error instanceof WireError) this.drop(error.code);
      else this.internalError(error);
    }
  }

  /**
   * Runs everything due at `now` and appends the packets to send to `out`. With `tails`, a TCP segment with at
   * least GATHER_MIN_BYTES of payload is a header in `out` and its payload, a view of the send buffer, at the
   * same index of `tails` (null elsewhere): the device sends the two as one packet, so the payload is copied
   * once, by the kernel, instead of into the packet first. Those views stay valid until the next input().
   */
  output(now: number, out: Buffer[], tails?: Array<Buffer | null>): void {
    this.now = now;
    this.out = out;
    this.tails = tails ?? null;
    this.deadlines.popDue(now, this.onDeadline);
    try {
      this.reassembler.expire(now);
    } catch (error) {
      this.internalError(error);
    }
    if (now >= this.nextUdpSweep) this.sweepUdp(now);
    if (this.queued.length > 0) {
      for (const packet of this.queued) out.push(packet);
      this.queued.length = 0;
    }
    // A flow woken while others transmit is appended and handled in this same round.
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const flow = dirty[i]!;
      flow.dirty = false;
      try {
        this.transmitFlow(flow, now);
      } catch (error) {
        this.failFlow(flow, error);
      }
    }
    if (dirty.length > 0) dirty.length = 0;
    if (tails !== undefined) while (tails.length < out.length) tails.push(null);
    this.tails = null;
    this.counters.packetsOut += out.length;
  }

  /**
   * The packets of every output() so far have been consumed (the device copied them): their memory may be
   * reused. Until this is called, packets stay valid.
   */
  releaseOutput(): void {
    this.arena.release();
  }

  /** When output() must run next without new input: 0 if now, Infinity if never. */
  pollAt(): number {
    if (this.dirty.length > 0 || this.queued.length > 0) return 0;
    let at = Math.min(this.deadlines.peekAt(), this.reassembler.pollAt());
    if (this.udpFlows.size > 0) at = Math.min(at, this.nextUdpSweep);
    return at;
  }

  /**
   * Active open: a connection from `localAddress` (an address routed into the device, as a cluster address
   * would be) to `remote` on the kernel's side. The socket emits 'connect' when established, or an error
   * (ECONNREFUSED, ETIMEDOUT).
   */
  connectTcp(localAddress: IpAddress, remote: Endpoint): TcpSocket {
    if (localAddress.length !== remote.address.length) {
      throw new Error('connectTcp: the local and remote addresses must be of the same IP version');
    }
    // The same bound as for the kernel's connections: whoever asks for connections cannot grow the table past it.
    if (this.tcpFlows.size >= this.limits.maxTcpFlows && !this.recycleTimeWait()) {
      throw new Error(`connectTcp: the stack holds maxTcpFlows (${this.limits.maxTcpFlows}) connections already`);
    }
    const port = this.freeLocalPort(localAddress, remote);
    const key = flowKey(remote.address, remote.port, localAddress, port);
    const config = localAddress.length === 4 ? this.tcpConfigV4 : this.tcpConfigV6;
    const local: Endpoint = { address: localAddress, port };
    const flow: TcpFlow = {
      key,
      local,
      remote,
      connection: TcpConnection.connect(port, remote.port, this.random32(), this.now, config),
      pending: null,
      socket: null,
      scheduledAt: Infinity,
      dirty: false,
      timeWait: false,
      removed: false,
    };
    this.tcpFlows.set(key, flow);
    flow.socket = new TcpSocket(flow.connection, () => this.wakeFlow(flow), local, remote);
    this.wakeFlow(flow);
    return flow.socket;
  }

  private freeLocalPort(localAddress: IpAddress, remote: Endpoint): number {
    const span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1;
    const start = this.random32() % span;
    for (let i = 0; i < span; i++) {
      const port = EPHEMERAL_FIRST + ((start + i) % span);
      if (!this.tcpFlows.has(flowKey(remote.address, remote.port, localAddress, port))) return port;
    }
    throw new Error(`connectTcp: no free local port towards ${formatIp(remote.address)}:${remote.port}`);
  }

  sendDatagram(flow: UdpFlow, data: Buffer): void {
    this.queued.push(
      this.builder.udp(flow.local.address, flow.remote.address, {
        srcPort: flow.local.port,
        dstPort: flow.remote.port,
        payload: data,
      }),
    );
    this.onWake();
  }

  refuseFlow(flow: UdpFlow): void {
    const code = flow.local.address.length === 4 ? Icmpv4UnreachableCode.PORT : Icmpv6UnreachableCode.PORT;
    this.queued.push(this.builder.unreachable(flow.remote.address, flow.local.address, flow.lastPacket, code));
    this.closeFlow(flow);
    this.onWake();
  }

  closeFlow(flow: UdpFlow): void {
    flow.closed = true;
    this.udpFlows.delete(flow.key);
    flow.emit('close');
  }

  private inputIpv4(ip: Buffer, checksumVouched: boolean, now: number): void {
    const repr = parseIpv4(ip);
    if (!repr.moreFragments && repr.fragmentOffset === 0) {
      this.inputTransport(repr.src, repr.dst, repr.protocol, repr.payload, ip, checksumVouched, now);
      return;
    }
    const key = `4:${formatIp(repr.src)}>${formatIp(repr.dst)}:${repr.protocol}:${repr.identification}`;
    const whole = this.reassembler.add(key, repr.fragmentOffset, repr.moreFragments, repr.payload, now, ip);
    if (whole === null) return;
    // A reassembled datagram's transport checksum was never vouched for by the device; an ICMP error about
    // it quotes its first fragment (RFC 792: the header and first 64 bits of the datagram's data).
    this.inputTransport(repr.src, repr.dst, repr.protocol, whole.payload, whole.firstPacket, false, now);
  }

  private inputIpv6(ip: Buffer, checksumVouched: boolean, now: number): void {
    const repr = parseIpv6(ip);
    const f = repr.fragment;
    if (f === undefined) {
      this.inputTransport(repr.src, repr.dst, repr.nextHeader, repr.payload, ip, checksumVouched, now);
      return;
    }
    const key = `6:${formatIp(repr.src)}>${formatIp(repr.dst)}:${f.identification}`;
    const whole = this.reassembler.add(key, f.offset, f.moreFragments, repr.payload, now, ip, repr.nextHeader);
    if (whole === null) return;
    // RFC 8200 §4.5: the next header is the offset-0 fragment's, and extension headers may follow it.
    const upper = parseIpv6Fragmentable(whole.payload, whole.firstTag);
    this.inputTransport(repr.src, repr.dst, upper.nextHeader, upper.payload, whole.firstPacket, false, now);
  }

  private inputTransport(
    src: IpAddress,
    dst: IpAddress,
    protocol: number,
    payload: Buffer,
    ip: Buffer,
    checksumVouched: boolean,
    now: number,
  ): void {
    const pseudo = checksumVouched ? null : pseudoHeaderSum(src, dst, protocol, payload.length);
    switch (protocol) {
      case IpProtocol.TCP:
        this.inputTcp(src, dst, parseTcp(payload, pseudo), ip, now);
        return;
      case IpProtocol.UDP: {
        const datagram = parseUdp(payload, pseudo);
        this.inputUdp(src, dst, datagram.srcPort, datagram.dstPort, datagram.payload, ip, now);
        return;
      }
      case IpProtocol.ICMP:
        this.inputIcmp(src, dst, parseIcmpv4(payload, !checksumVouched));
        return;
      case IpProtocol.ICMPV6:
        this.inputIcmp(src, dst, parseIcmpv6(payload, pseudo));
        return;
      default:
        this.drop('unsupported-protocol');
    }
  }

  private inputTcp(src: IpAddress, dst: IpAddress, seg: TcpRepr, ip: Buffer, now: number): void {
    const key = flowKey(src, seg.srcPort, dst, seg.dstPort);
    const flow = this.tcpFlows.get(key);
    if (flow !== undefined) {
      if (flow.pending !== null) {
        // Undecided: a repeated SYN waits with the first; a RST withdraws the attempt.
        if ((seg.flags & TcpFlags.RST) !== 0) this.removeTcpFlow(flow);
        return;
      }
      if (!flow.timeWait || !flow.connection.acceptsNewSyn(seg)) {
        flow.connection.handleSegment(seg, now);
        this.noteTimeWait(flow);
        this.markDirty(flow);
        return;
      }
      // RFC 6191: a newer SYN ends TIME-WAIT; it goes through the two-phase accept as a new connection.
      this.removeTcpFlow(flow);
    }
    const isSyn = (seg.flags & (TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST)) === TcpFlags.SYN;
    if (!isSyn) {
      const reset = resetFor(seg);
      if (reset !== null) this.queued.push(this.builder.tcp(dst, src, reset, 0));
      return;
    }
    if (this.pendingSyns >= this.limits.maxPendingSyns) {
      this.drop('syn-flood');
      return;
    }
    if (this.tcpFlows.size >= this.limits.maxTcpFlows && !this.recycleTimeWait()) {
      this.drop('flow-limit');
      const reset = resetFor(seg);
      if (reset !== null) this.queued.push(this.builder.tcp(dst, src, reset, 0));
      return;
    }
    const config = src.length === 4 ? this.tcpConfigV4 : this.tcpConfigV6;
    const local: Endpoint = { address: dst, port: seg.dstPort };
    const remote: Endpoint = { address: src, port: seg.srcPort };
    const pendingFlow: TcpFlow = {
      key,
      local,
      remote,
      connection: TcpConnection.fromSyn(seg, this.random32(), now, config),
      // The options and the packet are copied: they outlive this input call.
      pending: { syn: { ...seg, payload: Buffer.alloc(0) }, packet: Buffer.from(ip), deadline: now + this.limits.acceptTimeoutMs },
      socket: null,
      scheduledAt: Infinity,
      dirty: false,
      timeWait: false,
      removed: false,
    };
    this.tcpFlows.set(key, pendingFlow);
    this.pendingSyns++;
    this.schedule(pendingFlow, pendingFlow.pending!.deadline);
    this.handlers.tcpConnect(this.connectRequest(pendingFlow));
  }

  private connectRequest(flow: TcpFlow): TcpConnectRequest {
    const decide = (): NonNullable<TcpFlow['pending']> => {
      const pending = flow.pending;
      if (pending === null || flow.removed) {
        throw new Error(`the connection attempt from ${formatIp(flow.remote.address)} was already decided or expired`);
      }
      flow.pending = null;
      this.pendingSyns--;
      return pending;
    };
    return {
      local: flow.local,
      remote: flow.remote,
      accept: () => this.acceptFlow(flow, decide, (wake) => new TcpSocket(flow.connection, wake, flow.local, flow.remote)),
      acceptSplice: (stream, observer) => this.acceptFlow(flow, decide, (wake) => new TcpSplice(flow.connection, wake, stream, observer)),
      refuse: () => {
        const { syn } = decide();
        const reset = resetFor(syn);
        if (reset !== null) this.queued.push(this.builder.tcp(flow.local.address, flow.remote.address, reset, 0));
        this.removeTcpFlow(flow);
        this.onWake();
      },
      unreachable: () => {
        const { packet } = decide();
        this.queueHostUnreachable(flow, packet);
        this.removeTcpFlow(flow);
        this.onWake();
      },
    };
  }

  private acceptFlow<T extends TcpSocket | TcpSplice>(flow: TcpFlow, decide: () => unknown, attach: (wake: () => void) => T): T {
    decide();
    flow.connection.accept(this.now);
    const socket = attach(() => this.wakeFlow(flow));
    flow.socket = socket;
    this.wakeFlow(flow);
    return socket;
  }

  /**
   * TIME-WAIT must not deny connections, and must not grow without bound either: at the flow limit the oldest
   * TIME-WAIT flow gives way (what it guards against, an old duplicate of that 4-tuple, is the lesser risk).
   */
  private recycleTimeWait(): boolean {
    for (const oldest of this.timeWaitFlows) {
      this.removeTcpFlow(oldest);
      this.counters.timeWaitRecycled++;
      return true;
    }
    return false;
  }

  private noteTimeWait(flow: TcpFlow): void {
    if (!flow.timeWait && flow.connection.state === 'TIME-WAIT') {
      flow.timeWait = true;
      this.timeWaitFlows.add(flow);
    }
  }

  private queueHostUnreachable(flow: TcpFlow, packet: Buffer): void {
    const code = flow.local.address.length === 4 ? Icmpv4UnreachableCode.HOST : Icmpv6UnreachableCode.ADDRESS;
    this.queued.push(this.builder.unreachable(flow.remote.address, flow.local.address, packet, code));
  }

  private wakeFlow(flow: TcpFlow): void {
    if (flow.removed) return;
    this.markDirty(flow);
    this.onWake();
  }

  private markDirty(flow: TcpFlow): void {
    if (flow.dirty) return;
    flow.dirty = true;
    this.dirty.push(flow);
  }

  /** A deadline's work for one flow; a bug surfacing there ends that flow only (see failFlow). */
  private readonly onDeadline = (flow: TcpFlow, at: number): void => {
    try {
      this.flowDeadline(flow, at);
    } catch (error) {
      this.failFlow(flow, error);
    }
  };

  private flowDeadline(flow: TcpFlow, at: number): void {
    if (flow.removed || flow.scheduledAt !== at) return;
    flow.scheduledAt = Infinity;
    const pending = flow.pending;
    if (pending !== null) {
      if (this.now >= pending.deadline) {
        flow.pending = null;
        this.pendingSyns--;
        this.drop('accept-timeout');
        this.queueHostUnreachable(flow, pending.packet);
        this.removeTcpFlow(flow);
      }
      return;
    }
    this.markDirty(flow);
  }

  private readonly emitSegment = (seg: TcpRepr): void => {
    const flow = this.emittingFlow!;
    const tails = this.tails;
    const detached = tails !== null && seg.payload.length >= GATHER_MIN_BYTES;
    if (detached) while (tails.length < this.out.length) tails.push(null);
    this.out.push(this.builder.tcp(flow.local.address, flow.remote.address, seg, flow.connection.effectiveMss, detached));
    if (detached) tails.push(seg.payload);
  };

  private transmitFlow(flow: TcpFlow, now: number): void {
    if (flow.removed || flow.pending !== null) return;
    const connection = flow.connection;
    this.emittingFlow = flow;
    connection.transmit(now, this.emitSegment);
    this.emittingFlow = null;
    if (connection.state === 'CLOSED') {
      this.removeTcpFlow(flow);
      return;
    }
    this.noteTimeWait(flow);
    this.schedule(flow, connection.pollAt());
  }

  /**
   * A bug of ours surfaced in one connection's output: that connection ends (its socket gets an error, the
   * peer's next segment meets a RST as for any unknown flow) and every other flow still goes out.
   */
  private failFlow(flow: TcpFlow, error: unknown): void {
    this.emittingFlow = null;
    this.removeTcpFlow(flow);
    flow.socket?.destroy(new TcpSocketError('ECONNABORTED', 'the connection failed inside the network stack'));
    this.internalError(error);
  }

  private internalError(error: unknown): void {
    this.drop('internal');
    this.onInternalError(error);
  }

  private schedule(flow: TcpFlow, at: number): void {
    if (at < flow.scheduledAt) {
      flow.scheduledAt = at;
      this.deadlines.push(at, flow);
    }
  }

  private removeTcpFlow(flow: TcpFlow): void {
    if (flow.removed) return;
    flow.removed = true;
    if (flow.pending !== null) {
      flow.pending = null;
      this.pendingSyns--;
    }
    if (flow.timeWait) this.timeWaitFlows.delete(flow);
    // A removed flow left in `dirty` is skipped by transmitFlow.
    this.tcpFlows.delete(flow.key);
  }

  private inputUdp(
    src: IpAddress,
    dst: IpAddress,
    srcPort: number,
    dstPort: number,
    payload: Buffer,
    ip: Buffer,
    now: number,
  ): void {
    const key = flowKey(src, srcPort, dst, dstPort);
    let flow = this.udpFlows.get(key);
    if (flow === undefined) {
      const local: Endpoint = { address: dst, port: dstPort };
      const remote: Endpoint = { address: src, port: srcPort };
      if (this.handlers.udpFlow === undefined) {
        const code = dst.length === 4 ? Icmpv4UnreachableCode.PORT : Icmpv6UnreachableCode.PORT;
        this.queued.push(this.builder.unreachable(src, dst, ip, code));
        return;
      }
      if (this.udpFlows.size >= this.limits.maxUdpFlows) {
        this.drop('flow-limit');
        return;
      }
      flow = new UdpFlow(this, local, remote, key, ip, now);
      this.udpFlows.set(key, flow);
      this.handlers.udpFlow(flow);
      if (flow.closed) return;
    }
    flow.lastActive = now;
    flow.lastPacket = ip;
    flow.emit('datagram', payload);
  }

  private sweepUdp(now: number): void {
    this.nextUdpSweep = now + UDP_SWEEP_MS;
    for (const flow of this.udpFlows.values()) {
      if (now - flow.lastActive < this.limits.udpIdleMs) continue;
      // A 'close' listener that throws must not keep the other flows, or the packets of this round, from going out.
      try {
        this.closeFlow(flow);
      } catch (error) {
        this.internalError(error);
      }
    }
  }

  private inputIcmp(src: IpAddress, dst: IpAddress, message: IcmpRepr): void {
    if (message.kind === 'dest-unreachable' || message.kind === 'packet-too-big') {
      this.inputIcmpError(dst, message);
      return;
    }
    if (message.kind !== 'echo-request') return;
    if (this.handlers.icmpEcho?.(dst) !== true) return;
    this.queued.push(
      this.builder.icmp(dst, src, {
        kind: 'echo-reply',
        identifier: message.identifier,
        sequence: message.sequence,
        data: message.data,
      }),
    );
  }

  /**
   * An ICMP error about a packet we sent (so its source is the flow's local end): a packet too big lowers the
   * connection's MSS (RFC 1191, RFC 8201), an unreachable is a hard or soft error (RFC 1122 §4.2.3.9). Only
   * TCP is looked at: UDP flows have no state an ICMP error could correct, so those are counted and ignored.
   */
  private inputIcmpError(
    dst: IpAddress,
    message: Extract<IcmpRepr, { kind: 'dest-unreachable' | 'packet-too-big' }>,
  ): void {
    this.counters.icmpErrors++;
    const quote = message.invoking;
    const v4 = dst.length === 4;
    // Our packets carry no IPv4 options or IPv6 extension headers, but the quote's header length is honoured.
    const ipHeaderLen = v4 ? (quote.length > 0 ? (quote[0]! & 0x0f) * 4 : 0) : IPV6_HEADER_LEN;
    const version = quote.length > 0 ? quote[0]! >> 4 : 0;
    // The quote must hold the TCP ports and sequence number: RFC 792's 64 bits of data are exactly that.
    if (version !== (v4 ? 4 : 6) || ipHeaderLen < IPV4_HEADER_LEN || quote.length < ipHeaderLen + 8) {
      this.drop('icmp-bad-quote');
      return;
    }
    const protocol = v4 ? quote[9]! : quote[6]!;
    if (protocol !== IpProtocol.TCP) {
      this.drop('icmp-not-tcp');
      return;
    }
    const ourAddress = v4 ? quote.subarray(12, 16) : quote.subarray(8, 24);
    const peerAddress = v4 ? quote.subarray(16, 20) : quote.subarray(24, 40);
    // The error is addressed to the quoted packet's sender; anything else is not about our packet.
    if (!ourAddress.equals(dst)) {
      this.drop('icmp-bad-quote');
      return;
    }
    const ourPort = quote.readUInt16BE(ipHeaderLen);
    const peerPort = quote.readUInt16BE(ipHeaderLen + 2);
    const flow = this.tcpFlows.get(flowKey(peerAddress, peerPort, ourAddress, ourPort));
    if (flow === undefined || flow.pending !== null) {
      this.drop('icmp-no-flow');
      return;
    }
    const connection = flow.connection;
    if (!connection.quotesSegmentInFlight(quote.readUInt32BE(ipHeaderLen + 4))) {
      this.drop('icmp-not-in-flight');
      return;
    }
    if (message.kind === 'packet-too-big') {
      // Our own packets' header sizes, not the quote's: the MSS is for the packets we build.
      const ownHeaders = (v4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN) + TCP_HEADER_MIN;
      const mtu = message.mtu;
      if (mtu < (v4 ? MIN_MTU_V4 : MIN_MTU_V6) || mtu >= this.mtu) {
        this.drop('icmp-bad-mtu');
        return;
      }
      const before = connection.effectiveMss;
      connection.pathMtuChanged(mtu - ownHeaders);
      if (connection.effectiveMss < before) this.counters.pathMtuDecreases++;
    } else {
      connection.icmpError(isHardUnreachable(v4, message.code));
    }
    this.markDirty(flow);
  }

  private drop(reason: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
  }
}

/**
 * Hard errors (RFC 1122 §4.2.3.9, as Linux's icmp_err_convert): the protocol or port is not there, or policy
 * forbids it. The others (network or host unreachable, ...) can be transient.
 */
function isHardUnreachable(v4: boolean, code: number): boolean {
  if (v4) {
    return code === Icmpv4UnreachableCode.PROTOCOL || code === Icmpv4UnreachableCode.PORT || code === Icmpv4UnreachableCode.ADMIN_PROHIBITED;
  }
  return code === Icmpv6UnreachableCode.ADMIN_PROHIBITED || code === Icmpv6UnreachableCode.PORT;
}
