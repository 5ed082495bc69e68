// The agent's one HTTP/2 (h2c) connection to the traffic manager's agent listener: the Agent service's
// ArriveAsAgent stream (the intercepts to apply) and the AGENT_PROTOCOL streams that carry intercepted traffic.
// When the connection or the stream ends, the agent drops every intercept (the app serves again: a pod keeps
// working while the manager is down) and connects again with backoff, forever.

import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { create } from '@bufbuild/protobuf';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Agent, AgentInfoSchema, AgentPortSchema, type AgentInfo, type AgentIntercept } from '../gen/kubetun/manager/v1/manager_pb.js';
import type { Logger } from '../log/logger.js';
import { ControlSession } from '../tunnel/control-session.js';
import {
  AGENT_HEADER,
  AGENT_PROTOCOL,
  CONNECTION_WINDOW_BYTES,
  DIAL_CLAIM_TIMEOUT_MS,
  ERROR_MESSAGE_HEADER,
  MIRROR_HEADER,
  SESSION_MEMORY_MIB,
  SOURCE_HEADER,
  STREAM_WINDOW_BYTES,
  agentPath,
  formatAuthority,
  headerText,
} from '../tunnel/protocol.js';
import { kubetunVersion } from '../version.js';
import type { AgentEnvironment } from './agent-environment.js';
import { InterceptDialError } from './http/http-routing.js';
import { awaitPeerSettings } from '../tunnel/peer-settings.js';
import { DEFAULT_HEARTBEAT, startHeartbeat, type HeartbeatTiming } from '../tunnel/session-heartbeat.js';

export interface ManagerLinkOptions {
  /** Reconnect delays: doubled from minMs after each failure, up to maxMs. Default 250 ms → 5 s. */
  backoff?: { minMs: number; maxMs: number };
  /** An HTTP/2 PING every intervalMs; no answer and no other byte within timeoutMs closes the connection. Default 1 s / 3 s. */
  heartbeat?: HeartbeatTiming;
  /** How long to wait for the connection's SETTINGS. Default 10 s. */
  connectTimeoutMs?: number;
}

export interface ManagerLinkEvents {
  /** The complete list of intercepts to apply now (replaces the previous one). */
  intercepts: [intercepts: AgentIntercept[]];
  /** The link is down: apply no intercept until the next `intercepts`. */
  lost: [];
}

/** The cluster client whose connection an agent stream carries. */
export interface StreamSource {
  address: string;
  port: number;
}

/** A directive lists at most a few hundred intercepts; anything larger is a broken manager. */
const MAX_DIRECTIVE_BYTES = 4 * 1024 * 1024;
/** Beyond the manager's own claim timeout, so that its 504 (with its message) normally arrives first. */
const OPEN_STREAM_TIMEOUT_MS = DIAL_CLAIM_TIMEOUT_MS + 5_000;

export function agentInfo(env: AgentEnvironment): AgentInfo {
  const { config } = env;
  return create(AgentInfoSchema, {
    pod: env.pod,
    namespace: env.podNamespace,
    workload: config.workload,
    kind: config.kind,
    container: config.container,
    ports: config.ports.map((p) => create(AgentPortSchema, p)),
    environment: env.appEnvironment,
    version: kubetunVersion(),
    podIp: env.podIp,
    replaced: config.replaced,
  });
}

export class ManagerLink extends EventEmitter<ManagerLinkEvents> {
  private session: http2.ClientHttp2Session | undefined;
  private agentId: string | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private readonly authority: string;
  private readonly backoff: { minMs: number; maxMs: number };
  private readonly heartbeat: HeartbeatTiming;
  private running: Promise<void> | undefined;

  constructor(
    private readonly env: AgentEnvironment,
    private readonly log: Logger,
    private readonly options: ManagerLinkOptions = {},
  ) {
    super();
    this.authority = formatAuthority(env.config.manager.host, env.config.manager.port);
    this.backoff = options.backoff ?? { minMs: 250, maxMs: 5_000 };
    this.heartbeat = options.heartbeat ?? DEFAULT_HEARTBEAT;
  }

  /** Connects and keeps connecting until stop(). */
  start(): void {
    this.running ??= this.run();
  }

  /** Closes the link for good (open agent streams fail). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    this.session?.destroy();
    await this.running;
  }

  /**
   * Opens a stream to the manager for a connection intercept `interceptId` takes; resolves once the intercepting
   * client took it. Rejects with InterceptDialError (502, or 504 on a timeout) otherwise.
   */
  openAgentStream(interceptId: string, source: StreamSource, mirror: boolean): Promise<Duplex> {
    const session = this.session;
    const agentId = this.agentId;
    if (session === undefined || agentId === undefined || session.closed || session.destroyed) {
      return Promise.reject(new InterceptDialError('the agent is not connected to the traffic manager', 502));
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(
        {
          ':method': 'CONNECT',
          ':protocol': AGENT_PROTOCOL,
          ':scheme': 'http',
          ':authority': this.authority,
          ':path': agentPath(interceptId),
          [AGENT_HEADER]: agentId,
          [SOURCE_HEADER]: formatAuthority(source.address, source.port),
          ...(mirror ? { [MIRROR_HEADER]: '1' } : {}),
        },
        { endStream: false },
      );
    } catch (error) {
      return Promise.reject(new InterceptDialError(`the connection to the traffic manager is not usable: ${(error as Error).message}`, 502));
    }
    return new Promise<Duplex>((resolve, reject) => {
      const fail = (error: InterceptDialError): void => {
        cleanup();
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(error);
      };
      const onError = (error: Error): void => fail(new InterceptDialError(`the stream to the traffic manager broke: ${error.message}`, 502));
      const onClose = (): void => fail(new InterceptDialError('the traffic manager closed the stream without an answer', 502));
      const onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void => {
        const status = headers[':status'] ?? 0;
        if (status >= 200 && status < 300) {
          cleanup();
          resolve(stream);
          return;
        }
        const message = headerText(headers[ERROR_MESSAGE_HEADER]) ?? `the traffic manager answered ${status}`;
        fail(new InterceptDialError(message, status === 504 ? 504 : 502));
      };
      const timer = setTimeout(() => fail(new InterceptDialError(`no answer from the traffic manager within ${OPEN_STREAM_TIMEOUT_MS} ms`, 504)), OPEN_STREAM_TIMEOUT_MS);
      const cleanup = (): void => {
        clearTimeout(timer);
        stream.off('error', onError);
        stream.off('close', onClose);
        stream.off('response', onResponse);
      };
      stream.on('error', onError);
      stream.on('close', onClose);
      stream.on('response', onResponse);
    });
  }

  private async run(): Promise<void> {
    let delay = this.backoff.minMs;
    let down = false;
    while (!this.stopped) {
      let why = 'the manager ended the agent stream';
      try {
        await this.arrive(await this.connect());
      } catch (error) {
        why = (error as Error).message;
      }
      if (this.stopped) break;
      const arrived = this.agentId !== undefined;
      const fields = { manager: this.authority, error: why };
      // Each state change once: losing the manager or the first failure at warn, the retries that follow at debug.
      if (arrived) this.log.warn('lost the traffic manager: the app serves every connection until it is back', fields);
      else if (!down) this.log.warn('the traffic manager is unreachable: the app serves every connection until it is back', fields);
      else this.log.debug('the traffic manager is still unreachable', fields);
      down = true;
      this.drop();
      if (arrived) delay = this.backoff.minMs;
      await this.sleep(delay);
      delay = Math.min(delay * 2, this.backoff.maxMs);
    }
    this.drop();
  }

  /** Forgets the session and the agent id, and tells the agent to apply no intercept. */
  private drop(): void {
    const hadIntercepts = this.agentId !== undefined;
    this.session?.destroy();
    this.session = undefined;
    this.agentId = undefined;
    if (hadIntercepts) this.emit('lost');
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private connect(): Promise<http2.ClientHttp2Session> {
    const session = http2.connect(`http://${this.authority}`, {
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: SESSION_MEMORY_MIB,
    });
    this.session = session;
    // Each relayed request and answer goes out at once, not after a delayed ACK (Nagle).
    session.once('connect', (_session, socket) => socket.setNoDelay(true));
    // An error after the connection is up ends the arrival stream; the loop reports it.
    session.on('error', () => undefined);
    return awaitPeerSettings(session, this.options.connectTimeoutMs ?? 10_000).then(() => {
      // In the cluster, next to the manager: a round trip is short, so a fixed window costs no latency.
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      startHeartbeat(session, this.heartbeat);
      return session;
    });
  }

  /** Runs one ArriveAsAgent stream to its end. */
  private async arrive(session: http2.ClientHttp2Session): Promise<void> {
    const origin = `http://${this.authority}`;
    const client: Client<typeof Agent> = createClient(
      Agent,
      createGrpcTransport({ baseUrl: origin, sessionManager: new ControlSession(origin, session), readMaxBytes: MAX_DIRECTIVE_BYTES }),
    );
    const closed = new AbortController();
    session.once('close', () => closed.abort());
    const signal = AbortSignal.any([this.abort.signal, closed.signal]);
    for await (const directive of client.arriveAsAgent(agentInfo(this.env), { signal })) {
      if (this.agentId === undefined) {
        if (directive.agentId === '') throw new Error('the traffic manager sent no agent id in its first directive');
        this.agentId = directive.agentId;
        this.log.info('arrived at the traffic manager', { manager: this.authority, pod: this.env.pod });
      }
      this.emit('intercepts', directive.intercepts);
    }
  }
}
