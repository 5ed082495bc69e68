// DNS served inside the user-space stack, on an address routed into the TUN device: no kernel socket, so
// nothing on the machine can take the port, and the address exists only while kubetun is connected. Any local
// user can send it anything: no failure escapes (it is dropped and logged, rate-limited), and a DNS-over-TCP
// client gets a bounded share of memory however many queries it pipelines.
import { DnsFrameReader, frameDnsMessage } from '../../dns/dns-framing.js';
import type { Endpoint } from '../../netstack/endpoint.js';
import type { TcpConnectRequest } from '../../netstack/stack.js';
import type { TcpSocket } from '../../netstack/tcp-socket.js';
import type { UdpFlow } from '../../netstack/udp-flow.js';
import { ipEquals } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import { createLogger, type Logger } from '../../log/logger.js';
import type { DnsResolver } from './dns-resolver.js';

const DNS_PORT = 53;
/** Queries of one TCP connection being resolved at once; more wait unread in the connection (RFC 7766 §6.2.1.1). */
export const MAX_TCP_QUERIES_IN_FLIGHT = 16;
/**
 * Answer bytes queued towards one TCP client before we stop reading its queries: one largest answer. A client
 * that does not read its answers stops getting new ones resolved; what it sent waits in its TCP window.
 */
export const MAX_TCP_QUEUED_BYTES = 0x10000;
/**
 * DNS-over-TCP connections served at once; more are refused. Each may hold the stack's TCP buffers (4 MiB each
 * way) besides what is bounded here; glibc and dig use TCP only after TC, and unbound serves 10 by default.
 */
export const MAX_TCP_CONNECTIONS = 16;
/**
 * A DNS-over-TCP connection with no query being resolved and nothing received for this long is closed (RFC 7766
 * §6.2.3), so clients that hold connections, or stop reading their answers, give their slot back.
 */
export const TCP_IDLE_TIMEOUT_MS = 10_000;
const ERROR_REPORT_INTERVAL_MS = 1000;

export class StackDnsServer {
  queries = 0;
  /** Failures met while answering (each dropped the query); logged at most once a second. */
  failures = 0;
  private tcpConnections = 0;
  private lastErrorReport = -Infinity;

  constructor(
    private readonly resolver: DnsResolver,
    readonly address: IpAddress,
    private readonly log: Logger = createLogger('warn'),
    private readonly tcpIdleTimeoutMs = TCP_IDLE_TIMEOUT_MS,
  ) {}

  /** Whether a flow to `local` is for this server. */
  serves(local: Endpoint): boolean {
    return local.port === DNS_PORT && ipEquals(local.address, this.address);
  }

  /**
   * Resolvers use a fresh source port for almost every query, so a flow is closed as soon as its queries are
   * answered: kept until the stack's idle expiry, they would fill the flow table at a few hundred queries a second.
   */
  serveUdp(flow: UdpFlow): void {
    let pending = 0;
    flow.on('datagram', (query) => {
      this.queries++;
      pending++;
      this.resolver
        .resolve(Buffer.from(query), 'udp')
        .then((answer) => flow.send(answer))
        .catch(this.failed)
        .then(() => {
          if (--pending === 0) flow.close();
        })
        .catch(this.failed);
    });
  }

  /**
   * DNS over TCP: two-byte length before each message (RFC 1035 §4.2.2, RFC 7766 pipelining). Reading stops while
   * MAX_TCP_QUERIES_IN_FLIGHT queries are being resolved or MAX_TCP_QUEUED_BYTES of answers wait for the client.
   */
  serveTcp(request: TcpConnectRequest): void {
    if (this.tcpConnections >= MAX_TCP_CONNECTIONS) {
      request.refuse();
      return;
    }
    this.tcpConnections++;
    const socket = request.accept();
    socket.once('close', () => this.tcpConnections--);
    socket.on('error', () => socket.destroy());
    new TcpDnsConnection(socket, this.resolver, () => this.queries++, this.failed).start(this.tcpIdleTimeoutMs);
  }

  /** Counts and reports a failure; never throws, so it may end any promise chain. */
  private readonly failed = (error: unknown): void => {
    this.failures++;
    const now = performance.now();
    if (now - this.lastErrorReport < ERROR_REPORT_INTERVAL_MS) return;
    this.lastErrorReport = now;
    try {
      this.log.error('answering a DNS query failed; it was dropped', { error: String((error as Error | undefined)?.stack ?? error), failures: this.failures });
    } catch {
      // Nowhere left to report it.
    }
  };
}

/** One DNS-over-TCP client: frames queries out of the byte stream and answers them in order of completion. */
class TcpDnsConnection {
  /** Bytes received and not yet framed into queries. */
  private readonly frames = new DnsFrameReader();
  private inFlight = 0;
  private clientDone = false;

  constructor(
    private readonly socket: TcpSocket,
    private readonly resolver: DnsResolver,
    private readonly counted: () => void,
    private readonly failed: (error: unknown) => void,
  ) {}

  start(idleTimeoutMs: number): void {
    const idle = setTimeout(() => (this.inFlight > 0 ? idle.refresh() : this.socket.destroy()), idleTimeoutMs).unref();
    this.socket.once('close', () => clearTimeout(idle));
    this.socket.on('data', (chunk: Buffer) => {
      idle.refresh();
      this.frames.push(chunk);
      this.pump();
    });
    this.socket.on('end', () => {
      this.clientDone = true;
      this.pump();
    });
  }

  /** Starts every complete query there is room for, then reads on only if there is room for more. */
  private pump(): void {
    let query: Buffer | null;
    while (this.hasRoom() && (query = this.frames.next()) !== null) this.answer(query);
    if (this.socket.destroyed) return;
    if (this.clientDone) {
      // Answer every query that arrived before the client's FIN, then close our side.
      if (this.inFlight === 0 && this.socket.writable) this.socket.end();
    } else if (this.hasRoom()) {
      this.socket.resume();
    } else {
      this.socket.pause();
    }
  }

  private hasRoom(): boolean {
    return this.inFlight < MAX_TCP_QUERIES_IN_FLIGHT && this.socket.writableLength < MAX_TCP_QUEUED_BYTES;
  }

  private answer(query: Buffer): void {
    this.counted();
    this.inFlight++;
    this.resolver
      .resolve(query, 'tcp')
      .then((answer) => {
        if (this.socket.destroyed || !this.socket.writable) return;
        // Once the stack's send buffer took the answer there may be room to read on.
        this.socket.write(frameDnsMessage(answer), () => this.pump());
      })
      .catch(this.failed)
      .then(() => {
        this.inFlight--;
        this.pump();
      })
      .catch(this.failed);
  }
}
