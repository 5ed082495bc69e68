// The client end of the tunnel: one HTTP/2 connection to the traffic manager carrying a CONNECT stream per TCP
// flow, a connect-udp stream per UDP flow, DNS queries (all on one DNS stream; RFC 8484 with an older manager)
// and the control API. The root daemon calls openTcp/openUdp per flow from its network stack; the user daemon
// drives the session through `manager`.

import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { isLoopbackHost } from '../net/loopback.js';
import { Manager } from '../gen/kubetun/manager/v1/manager_pb.js';
import { ControlSession } from './control-session.js';
import { awaitPeerSettings } from './peer-settings.js';
import { autotuneReceiveWindow, type ReceiveWindowTuner } from './receive-window.js';
import {
  CONNECT_UDP_PROTOCOL,
  DIAL_CLAIM_TIMEOUT_MS,
  DNS_MESSAGE_TYPE,
  DNS_QUERY_PATH,
  DNS_STREAM_PATH,
  DNS_STREAM_TYPE,
  ERROR_HEADER,
  ERROR_MESSAGE_HEADER,
  INTERCEPT_PROTOCOL,
  SESSION_HEADER,
  SESSION_MEMORY_MIB,
  STREAM_WINDOW_BYTES,
  connectUdpPath,
  formatAuthority,
  headerText,
  interceptPath,
  type WireErrorReason,
} from './protocol.js';
import { answeredError, TunnelError } from './tunnel-error.js';
import { DnsStream, DnsStreamUnsupported } from './dns-stream.js';
import { UdpTunnel } from './udp-tunnel.js';
import { DEFAULT_HEARTBEAT, startHeartbeat, type HeartbeatTiming } from './session-heartbeat.js';

export { TunnelError, type TunnelErrorCode } from './tunnel-error.js';
export { UdpTunnel, MAX_UDP_PAYLOAD } from './udp-tunnel.js';

export interface TunnelClientOptions {
  /** The session to send on every stream; it can also be set later through `sessionId`. */
  sessionId?: string;
  /** How long to wait for the connection and the manager's SETTINGS. Default 10 s. */
  connectTimeoutMs?: number;
  /** TLS options for an `https:` URL (a CA, a server name). */
  tls?: ConnectionOptions;
  /**
   * Sent as `authorization: Bearer …` on every stream and RPC (a manager's TLS listener requires it); it can be
   * replaced later through `bearerToken`. Sent only over TLS or to a loopback address.
   */
  bearerToken?: string;
  /**
   * An HTTP/2 PING every intervalMs; no answer and no other byte within timeoutMs closes the connection
   * ('disconnected'), so a path that died silently (a port-forward whose pod is gone) is noticed
   * (session-heartbeat.ts). Default 1 s / 3 s; false turns it off.
   */
  heartbeat?: HeartbeatTiming | false;
}

/** The origin spoken over a Unix socket, where there is no host to name. */
const UNIX_ORIGIN = 'http://localhost';

export interface TunnelClientEvents {
  /** Once, on the turn after connect() resolved. */
  connected: [];
  /** The connection is gone; every open stream has failed. Connect again (the session may still be alive). */
  disconnected: [error: TunnelError];
}

/** The largest DNS answer accepted from the manager (a DNS message is at most 64 KiB). */
const MAX_DNS_RESPONSE = 65_535;

/** The HTTP origin requests carry: the URL's own, or a fixed one over a Unix socket. */
function httpOrigin(url: URL): string {
  return url.protocol === 'unix:' ? UNIX_ORIGIN : url.origin;
}

export class TunnelClient extends EventEmitter<TunnelClientEvents> {
  /** Sent as `kubetun-session` on every stream. */
  sessionId: string | undefined;
  /** Sent as `authorization: Bearer …` on every stream and RPC; never logged. */
  bearerToken: string | undefined;
  /** The traffic manager's control API, on this same connection. */
  readonly manager: Client<typeof Manager>;
  private disconnected = false;
  private streams = 0;
  private dnsStream: DnsStream | null = null;
  /** The manager answered the DNS stream as one that does not serve it: each query gets a stream of its own. */
  private dnsStreamUnsupported = false;

  private constructor(
    private readonly session: http2.ClientHttp2Session,
    readonly url: URL,
    options: TunnelClientOptions,
    private readonly receiveWindow: ReceiveWindowTuner,
  ) {
    super();
    this.sessionId = options.sessionId;
    this.bearerToken = options.bearerToken;
    const origin = httpOrigin(url);
    const transport = createGrpcTransport({
      baseUrl: origin,
      sessionManager: new ControlSession(origin, session),
      interceptors: [
        (next) => (request) => {
          if (this.bearerToken !== undefined) request.header.set('authorization', `Bearer ${this.bearerToken}`);
          return next(request);
        },
      ],
    });
    this.manager = createClient(Manager, transport);
    let lastError: Error | undefined;
    session.on('error', (error: Error) => (lastError = error));
    session.on('close', () => {
      const why = lastError ? `: ${lastError.message}` : '';
      this.markDisconnected(new TunnelError('CONNECTION', `The connection to the traffic manager closed${why}.`));
    });
    session.on('goaway', () => {
      this.markDisconnected(new TunnelError('CONNECTION', 'The traffic manager is going away; connect again.'));
    });
    if (options.heartbeat !== false) startHeartbeat(session, options.heartbeat ?? DEFAULT_HEARTBEAT);
  }

  /**
   * Connects to `http://host:port` (h2c), `https://host:port`, or `unix:/path` (h2c over a Unix socket, e.g. the
   * user daemon's port-forward to the manager); resolves once the manager's SETTINGS arrived.
   */
  static connect(url: string, options: TunnelClientOptions = {}): Promise<TunnelClient> {
    const target = URL.canParse(url) ? new URL(url) : null;
    const unix = target?.protocol === 'unix:' && target.pathname !== '';
    if (target === null || (target.protocol !== 'http:' && target.protocol !== 'https:' && !unix)) {
      return Promise.reject(
        new TunnelError('CONNECTION', `The traffic manager URL must start with http://, https:// or unix:/, not "${url}".`),
      );
    }
    if (options.bearerToken !== undefined && target.protocol === 'http:' && !isLoopbackHost(target.hostname)) {
      return Promise.reject(
        new TunnelError('CONNECTION', `Refusing to send credentials in plain text to ${target.origin}: use https:// (the manager's TLS listener).`),
      );
    }
    const where = unix ? target.href : target.origin;
    const session = http2.connect(unix ? UNIX_ORIGIN : target, {
      ...options.tls,
      ...(unix ? { createConnection: () => net.connect(target.pathname) } : {}),
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: SESSION_MEMORY_MIB,
    });
    // Node leaves Nagle on: a new flow's CONNECT would wait for the ACK of the previous small frame, which a
    // delayed ACK holds for up to 40 ms. (The session's own socket is a proxy that refuses setNoDelay.)
    session.once('connect', (_session, socket) => socket.setNoDelay(true));
    return awaitPeerSettings(session, options.connectTimeoutMs ?? 10_000).then(
      () => {
        const client = new TunnelClient(session, target, options, autotuneReceiveWindow(session));
        // On the next turn, so that listeners added right after `await connect()` hear it.
        setImmediate(() => client.emit('connected'));
        return client;
      },
      (error: Error) => {
        throw new TunnelError('CONNECTION', `Cannot reach the traffic manager at ${where}: ${error.message}.`, { cause: error });
      },
    );
  }

  /**
   * Opens a TCP flow to host:port in the cluster; resolves once the manager has connected it. On the Duplex,
   * end() sends FIN (END_STREAM), 'end' means the destination sent FIN, destroy() resets the destination's
   * connection, and 'error' means the destination (or the connection to the manager) reset the flow.
   */
  async openTcp(host: string, port: number): Promise<Duplex> {
    const stream = this.request({ ':method': 'CONNECT', ':authority': formatAuthority(host, port) });
    await this.response(stream, `TCP ${formatAuthority(host, port)}`);
    return stream;
  }

  /** Opens a UDP flow to host:port in the cluster (connect-udp); resolves once the manager has bound it. */
  async openUdp(host: string, port: number): Promise<UdpTunnel> {
    const stream = this.request({
      ':method': 'CONNECT',
      ':protocol': CONNECT_UDP_PROTOCOL,
      ':scheme': this.url.protocol === 'https:' ? 'https' : 'http',
      ':path': connectUdpPath(host, port),
      'capsule-protocol': '?1',
    });
    await this.response(stream, `UDP ${formatAuthority(host, port)}`);
    return new UdpTunnel(stream);
  }

  /**
   * Claims an intercepted connection the manager announced (InterceptDial.id): resolves once the manager has spliced
   * it with the agent's stream. The Duplex behaves like openTcp's, its peer being the cluster client. UDP dials carry
   * datagram capsules on it.
   */
  async openInterceptStream(dialId: string): Promise<Duplex> {
    const stream = this.request(this.interceptHeaders(dialId));
    await this.response(stream, `intercepted connection ${dialId}`);
    return stream;
  }

  /** Claims an intercepted UDP flow: datagrams both ways, as openUdp's. */
  async openInterceptUdp(dialId: string): Promise<UdpTunnel> {
    const stream = this.request({ ...this.interceptHeaders(dialId), 'capsule-protocol': '?1' });
    await this.response(stream, `intercepted UDP flow ${dialId}`);
    return new UdpTunnel(stream);
  }

  /**
   * Answers an announced dial with a failure (the local port did not answer): the manager fails the agent's stream
   * with it, so the cluster client sees a refusal or an HTTP 502 instead of waiting. Resolves when the manager has
   * answered or the stream is gone (a silent manager: after DIAL_CLAIM_TIMEOUT_MS); it never rejects once sent.
   */
  async refuseDial(dialId: string, reason: WireErrorReason, message: string): Promise<void> {
    const headers = this.interceptHeaders(dialId);
    headers[ERROR_HEADER] = reason;
    // Header values cannot carry line breaks; the message is a sentence anyway.
    headers[ERROR_MESSAGE_HEADER] = message.replace(/[\r\n]+/g, ' ');
    const stream = this.request(headers, true);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), DIAL_CLAIM_TIMEOUT_MS);
      stream.once('response', () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
      stream.on('error', () => undefined);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      stream.resume();
    });
  }

  private interceptHeaders(dialId: string): http2.OutgoingHttpHeaders {
    return {
      ':method': 'CONNECT',
      ':protocol': INTERCEPT_PROTOCOL,
      ':scheme': this.url.protocol === 'https:' ? 'https' : 'http',
      ':path': interceptPath(dialId),
    };
  }

  /**
   * Resolves a DNS query (wire format) in the cluster with this session's namespace search path: on the DNS
   * stream, or on a stream of its own when the manager has none.
   */
  async dnsQuery(message: Buffer): Promise<Buffer> {
    if (!this.dnsStreamUnsupported) {
      try {
        return await this.currentDnsStream().query(message);
      } catch (error) {
        if (!(error instanceof DnsStreamUnsupported)) throw error;
        this.dnsStreamUnsupported = true;
      }
    }
    return this.dnsQueryAlone(message);
  }

  /** The DNS stream for the current session and credentials, opened (and an outdated one retired) as needed. */
  private currentDnsStream(): DnsStream {
    const current = this.dnsStream;
    if (current?.usable && current.opener.sessionId === this.sessionId && current.opener.bearerToken === this.bearerToken) return current;
    current?.retire();
    const opener = { sessionId: this.sessionId, bearerToken: this.bearerToken };
    const stream = this.request({ ':method': 'POST', ':path': DNS_STREAM_PATH, 'content-type': DNS_STREAM_TYPE, accept: DNS_STREAM_TYPE });
    this.dnsStream = new DnsStream(stream, opener);
    return this.dnsStream;
  }

  /** DNS over HTTP (RFC 8484): the query on a stream of its own. */
  private async dnsQueryAlone(message: Buffer): Promise<Buffer> {
    const stream = this.request({
      ':method': 'POST',
      ':path': DNS_QUERY_PATH,
      'content-type': DNS_MESSAGE_TYPE,
      accept: DNS_MESSAGE_TYPE,
    });
    stream.end(message);
    const body = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      // With a content-length the answer is complete at its last byte: Node sends END_STREAM in a frame of its
      // own, a turn later, and waiting for it cost every lookup another wake-up in each hop. (nghttp2 resets a
      // stream whose DATA overruns its content-length, so the length cannot be used to cut an answer short.)
      let announced = -1;
      let settled = false;
      const settle = (error: Error | null): void => {
        if (settled) return;
        settled = true;
        if (error === null) resolve(Buffer.concat(chunks, length));
        else reject(error);
      };
      stream.once('response', (headers) => {
        const value = Number(headerText(headers['content-length']));
        if (Number.isSafeInteger(value) && value >= 0 && value <= MAX_DNS_RESPONSE) announced = value;
        if (announced === 0) settle(null);
      });
      stream.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > MAX_DNS_RESPONSE) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(chunk);
        if (length === announced) settle(null);
      });
      stream.on('end', () => settle(null));
      stream.on('error', (error: Error) => settle(this.connectionError(error)));
      // Every stream closes, most after their answer: the error (its stack trace) is made only when it is one.
      stream.on('close', () => {
        if (!settled) settle(new TunnelError('CONNECTION', 'The DNS answer from the traffic manager was cut short.'));
      });
    });
    // A failed response rejects both; the response's error is the one reported.
    body.catch(() => undefined);
    await this.response(stream, 'DNS query');
    return body;
  }

  /** Round trip of an HTTP/2 PING in milliseconds; rejects with TIMEOUT or CONNECTION. */
  ping(timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new TunnelError('TIMEOUT', `The traffic manager did not answer a ping within ${timeoutMs} ms.`)),
        timeoutMs,
      );
      try {
        this.session.ping((error, duration) => {
          clearTimeout(timer);
          if (error) reject(new TunnelError('CONNECTION', `Ping failed: ${error.message}.`, { cause: error }));
          else resolve(duration);
        });
      } catch (error) {
        clearTimeout(timer);
        reject(this.connectionError(error));
      }
    });
  }

  /** Streams opened on this connection and not yet closed: what a pool of connections balances flows by. */
  get openStreams(): number {
    return this.streams;
  }

  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  /** Closes the connection; open streams fail. */
  close(): void {
    this.session.destroy();
  }

  private markDisconnected(error: TunnelError): void {
    if (this.disconnected) return;
    this.disconnected = true;
    this.emit('disconnected', error);
  }

  private connectionError(error: unknown): TunnelError {
    const why = error instanceof Error ? error.message : String(error);
    return new TunnelError('CONNECTION', `The connection to the traffic manager is not usable: ${why}.`, {
      cause: error,
    });
  }

  private request(headers: http2.OutgoingHttpHeaders, endStream = false): http2.ClientHttp2Stream {
    if (this.sessionId !== undefined) headers[SESSION_HEADER] = this.sessionId;
    if (this.bearerToken !== undefined) headers.authorization = `Bearer ${this.bearerToken}`;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session.request(headers, { endStream });
    } catch (error) {
      throw this.connectionError(error);
    }
    this.streams++;
    stream.once('close', () => this.streams--);
    this.receiveWindow.streamOpened();
    return stream;
  }

  /** Waits for the response headers; a non-200 status becomes the TunnelError the manager described. */
  private response(stream: http2.ClientHttp2Stream, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        cleanup();
        reject(new TunnelError('CONNECTION', `${what} failed: the stream broke (${error.message}).`, { cause: error }));
      };
      const onClose = (): void => {
        cleanup();
        reject(new TunnelError('CONNECTION', `${what} failed: the stream closed before an answer.`));
      };
      const onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void => {
        cleanup();
        const status = headers[':status'] ?? 0;
        if (status === 200) {
          resolve();
          return;
        }
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(answeredError(headers, what));
      };
      const cleanup = (): void => {
        stream.off('error', onError);
        stream.off('close', onClose);
        stream.off('response', onResponse);
      };
      stream.on('error', onError);
      stream.on('close', onClose);
      stream.on('response', onResponse);
    });
  }
}
