// The traffic manager's HTTP/2 server: the control API (ConnectRPC), CONNECT streams for TCP, connect-udp
// streams for UDP, and DNS over HTTP, all on one port and usually one connection per client; in a cluster exposed
// directly, the same again on a TLS port. Every request is authenticated first (client-auth.ts), and a session is
// used only by the identity that created it.

import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  CONNECT_UDP_PROTOCOL,
  DIAL_CLAIM_TIMEOUT_MS,
  DNS_QUERY_PATH,
  DNS_STREAM_PATH,
  INTERCEPT_PROTOCOL,
  SESSION_HEADER,
  parseAuthority,
  parseConnectUdpPath,
  parseIdPath,
  headerText,
} from '../tunnel/protocol.js';
import { autotuneReceiveWindow } from '../tunnel/receive-window.js';
import type { KubeAccess } from '../k8s/resilient-informer.js';
import { managerKubeAccess } from './discovery/manager-kube.js';
import { startAgentListener, type AgentListener } from './intercepts/agent-listener.js';
import { AgentRegistry } from './intercepts/agent-registry.js';
import { kubeAgentVerifier, type AgentVerifier } from './intercepts/agent-verifier.js';
import { DialBroker } from './intercepts/dial-broker.js';
import { InterceptRegistry } from './intercepts/intercept-registry.js';
import type { Intercepting } from './intercepts/intercept-service.js';
import { kubeWorkloadApi, type WorkloadApi } from './intercepts/workload-api.js';
import { answerAuthFailure, authenticateRequest } from './auth-answer.js';
import { isLoopbackHost } from '../net/loopback.js';
import { CLIENT_IDENTITY, portForwardAuthenticator, type ClientAuthenticator } from './client-auth.js';
import { ClusterInfoSource } from './cluster-info-source.js';
import { createClusterDnsClient, type DnsExchange } from './cluster-dns-client.js';
import { controlContextValues, controlRoutes } from './control-service.js';
import { serveDnsQuery, serveDnsStream } from './dns-endpoint.js';
import type { Logger } from '../log/logger.js';
import { SessionRegistry } from './session-registry.js';
import { answerBadRequest, answerFailure } from './stream-answer.js';
import { createTcpDialer, type TcpDialer } from './tcp-dialer.js';
import { serveTcpFlow } from './tcp-flow.js';
import type { ManagerSettings } from './manager-config.js';
import { DEFAULT_LIMITS, globalAllowances, http2ServerLimits, RPC_READ_MAX_BYTES, type ManagerLimits } from './manager-limits.js';
import { ownAddresses, TargetPolicy } from './target-policy.js';
import { serveUdpFlow } from './udp-flow.js';

/** The settings from the command line (manager-config.ts; discovery runs beside it), and what only code can give. */
export interface TrafficManagerConfig extends Omit<ManagerSettings, 'logLevel' | 'discovery' | 'clientAuth'> {
  /** The command line's Kubernetes access (kubeconfig or in-cluster), used for intercepts when `kube` is not given. */
  discovery?: Pick<ManagerSettings['discovery'], 'kube'>;
  version: string;
  log: Logger;
  /** How clients of a TLS listener prove who they are; required when one is served. */
  authenticator?: ClientAuthenticator;
  /** Replaces the TCP dialer (tests). */
  dialTcp?: TcpDialer;
  /** Replaces the cluster DNS client (tests). */
  dnsExchange?: DnsExchange;
  /** Caps other than DEFAULT_LIMITS (tests). */
  limits?: Partial<ManagerLimits>;
  /** Lets in-process tests dial target servers on this host's loopback (TargetPolicyOptions). */
  loopbackTargetsForTests?: boolean;
  /** The manager's Kubernetes access: intercepts need it. Default: managerKubeAccess(discovery.kube). */
  kube?: KubeAccess;
  /** Replace the Kubernetes side of intercepts (tests where no API server can run). */
  workloadApi?: WorkloadApi;
  agentVerifier?: AgentVerifier;
  /** How long an agent's stream waits for the client's answer (tests); default DIAL_CLAIM_TIMEOUT_MS. */
  dialClaimTimeoutMs?: number;
}

export interface TrafficManager {
  /** Where it listens, e.g. `http://127.0.0.1:8081`. */
  readonly url: string;
  readonly address: AddressInfo;
  /** The `--listen-tls` listener's URL, when there is one. */
  readonly tlsUrl: string | undefined;
  /** The agent listener's URL (`--agent-listen`), when there is one. */
  readonly agentUrl: string | undefined;
  readonly cluster: ClusterInfoSource;
  readonly sessions: SessionRegistry;
  /** Open client HTTP/2 connections. */
  readonly connectionCount: number;
  /** Ends every session, sends GOAWAY and closes the listener. */
  close(): Promise<void>;
}

export class ListenerTrustError extends Error {
  readonly code = 'LISTENER_TRUST';
  override readonly name = 'ListenerTrustError';
}

interface Listener {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
}

/** The main listener, and the TLS one beside it (`--listen-tls`: then the main one stays h2c). */
function listenersOf(config: TrafficManagerConfig): Listener[] {
  const main: Listener = { host: config.host, port: config.port };
  if (config.tlsListen === undefined) return [{ ...main, ...(config.tls ? { tls: config.tls } : {}) }];
  if (config.tls === undefined) throw new ListenerTrustError('--listen-tls needs --tls-cert and --tls-key.');
  return [main, { ...config.tlsListen, tls: config.tls }];
}

/** Loopback h2c: port-forwards, already authorized by the API server. Anything else: TLS and credentials. */
function authenticatorFor(listener: Listener, config: TrafficManagerConfig): ClientAuthenticator {
  if (listener.tls === undefined) {
    if (isLoopbackHost(listener.host)) return portForwardAuthenticator;
    throw new ListenerTrustError(`Refusing to serve h2c without client authentication on ${listener.host}:${listener.port}, which is not a loopback address: use TLS with client authentication, or listen on 127.0.0.1.`);
  }
  if (config.authenticator === undefined) {
    throw new ListenerTrustError(`The TLS listener ${listener.host}:${listener.port} needs client authentication (a client token file, or Kubernetes credentials).`);
  }
  return config.authenticator;
}

function serverOptions(listener: Listener): http2.SecureServerOptions {
  const options: http2.SecureServerOptions = http2ServerLimits();
  if (listener.tls) {
    options.cert = readFileSync(listener.tls.certFile);
    options.key = readFileSync(listener.tls.keyFile);
  }
  return options;
}

function urlOf(address: AddressInfo, tls: boolean): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`;
}

/** The intercept machinery over the API (or the tests' double); undefined without one. */
async function interceptingFor(config: TrafficManagerConfig, limits: ManagerLimits): Promise<(Intercepting & { verifier: AgentVerifier }) | undefined> {
  let kube = config.kube;
  const settings = config.discovery?.kube;
  if (kube === undefined && config.workloadApi === undefined && settings !== undefined) {
    try {
      kube = await managerKubeAccess(settings);
    } catch (error) {
      // The tunnel works without it; intercepts then refuse, saying why there is no API.
      config.log.warn('no Kubernetes access for intercepts', { error: (error as Error).message });
    }
  }
  const api = config.workloadApi ?? (kube === undefined ? undefined : kubeWorkloadApi(kube));
  if (api === undefined) return undefined;
  const agents = new AgentRegistry(limits);
  const intercepts = new InterceptRegistry({ api, agents, log: config.log, interceptsPerSession: limits.interceptsPerSession });
  const broker = new DialBroker(intercepts, limits, config.log, config.dialClaimTimeoutMs ?? DIAL_CLAIM_TIMEOUT_MS);
  return { api, agents, intercepts, broker, verifier: config.agentVerifier ?? kubeAgentVerifier(api) };
}

export async function startTrafficManager(config: TrafficManagerConfig): Promise<TrafficManager> {
  const log = config.log;
  const cluster = new ClusterInfoSource(config.cluster);
  const limits: ManagerLimits = { ...DEFAULT_LIMITS, ...config.limits };
  const sessions = new SessionRegistry(config.sessionTtlMs, Date.now, limits);
  const flows = globalAllowances(limits);
  const policy = new TargetPolicy(cluster, config.allow, {
    own: ownAddresses(),
    ...(config.loopbackTargetsForTests === true ? { loopbackForTests: true } : {}),
  });
  const intercepting = await interceptingFor(config, limits);
  if (config.agentListen !== undefined && intercepting === undefined) {
    throw new ListenerTrustError('--agent-listen needs the Kubernetes API to check arriving agents: run the manager in the cluster or give it --kubeconfig.');
  }
  const dial = config.dialTcp ?? createTcpDialer({ timeoutMs: config.dialTimeoutMs });
  const exchange = config.dnsExchange ?? createClusterDnsClient({ server: () => cluster.current().facts.dns });
  // The identity each request was admitted with, for the control API's handlers.
  const identities = new WeakMap<http2.Http2ServerRequest, string>();
  const control = connectNodeAdapter({
    routes: controlRoutes({ sessions, cluster, version: config.version, log, ...(intercepting ? { intercepting } : {}) }),
    contextValues: (req) => controlContextValues(req).set(CLIENT_IDENTITY, identities.get(req as http2.Http2ServerRequest)),
    // Bounded messages, and no compression: ~1 MB of gzip would otherwise inflate to ~1 GB in the manager.
    readMaxBytes: RPC_READ_MAX_BYTES,
    acceptCompression: [],
  });

  sessions.on('ended', (session, reason) => {
    if (reason === 'expired') log.info('session expired', { session: session.tag, name: session.client.name });
  });
  cluster.on('change', (snapshot) => log.info('cluster info changed', { revision: snapshot.revision }));

  const listeners = listenersOf(config).map((listener) => ({ listener, authenticator: authenticatorFor(listener, config) }));
  const connections = new Set<http2.ServerHttp2Session>();
  const servers: (http2.Http2Server | http2.Http2SecureServer)[] = [];

  const serveRequest = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, identity: string): void => {
    if (req.url === DNS_STREAM_PATH) {
      serveDnsStream(req, res, { sessions, cluster, exchange, log }, identity);
      return;
    }
    if (req.url.split('?')[0] === DNS_QUERY_PATH) {
      serveDnsQuery(req, res, { sessions, cluster, exchange, log }, identity).catch((error: Error) => {
        log.error('dns query failed', { error: error.message });
        if (!res.headersSent) res.writeHead(500).end();
      });
      return;
    }
    // An RPC refused before its body was read (over readMaxBytes) leaves the rest of the body in a stream
    // that nobody reads any more (the request object is destroyed), and an unread stream is never destroyed:
    // it would hold the connection open for good. Once answered, the rest is discarded.
    req.stream.once('finish', () => {
      if (req.destroyed && !req.stream.readableEnded) req.stream.removeAllListeners('data').resume();
    });
    identities.set(req, identity);
    control(req, res);
  };

  const serveConnect = (req: http2.Http2ServerRequest, identity: string): void => {
    const stream = req.stream;
    const headers = req.headers;
    const sessionId = headerText(headers[SESSION_HEADER]);
    const session = sessionId === undefined ? undefined : sessions.owned(sessionId, identity);
    if (session === undefined) {
      answerFailure(stream, 'session', 'No live session of yours: arrive at the traffic manager and send its id in kubetun-session.');
      return;
    }
    const protocol = headerText(headers[':protocol']);
    if (protocol === undefined) {
      const target = parseAuthority(headerText(headers[':authority']) ?? '');
      if (target === undefined) {
        answerBadRequest(stream, 'CONNECT needs :authority host:port with a port from 1 to 65535.');
        return;
      }
      serveTcpFlow(stream, session, target, { policy, dial, log, flows: flows.tcpFlows }).catch((error: Error) => {
        log.error('tcp flow failed', { error: error.message });
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
      return;
    }
    if (protocol === INTERCEPT_PROTOCOL) {
      const dialId = parseIdPath(headerText(headers[':path']) ?? '', 'intercept');
      if (dialId === undefined || intercepting === undefined) {
        answerBadRequest(stream, `${INTERCEPT_PROTOCOL} needs :path /intercept/{dial id} from a WatchDials announcement.`);
        return;
      }
      intercepting.broker.claim(stream, session, dialId, headers);
      return;
    }
    if (protocol !== CONNECT_UDP_PROTOCOL) {
      answerBadRequest(stream, `The extended CONNECT protocol "${protocol}" is not served here; use connect-udp or ${INTERCEPT_PROTOCOL}.`);
      return;
    }
    const target = parseConnectUdpPath(headerText(headers[':path']) ?? '');
    if (target === undefined) {
      answerBadRequest(stream, 'connect-udp needs :path /.well-known/masque/udp/{host}/{port}/.');
      return;
    }
    serveUdpFlow(stream, session, target, { policy, idleMs: config.udpIdleMs, log, flows: flows.udpFlows });
  };

  for (const { listener, authenticator } of listeners) {
    const server = listener.tls ? http2.createSecureServer(serverOptions(listener)) : http2.createServer(serverOptions(listener));
    servers.push(server);
    // Sockets beyond the cap are closed as they are accepted ('drop'), before any TLS or HTTP/2 work.
    server.maxConnections = limits.connections;
    // A small frame (a new flow's 200, a reply) goes out at once, not after the ACK of the previous one (Nagle).
    server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    server.on('drop', () => log.debug('client connection dropped: at the connection limit', { limit: limits.connections }));
    server.on('session', (session: http2.ServerHttp2Session) => {
      connections.add(session);
      // The client may be a WAN away: its uploads get a window sized to the path (receive-window.ts).
      autotuneReceiveWindow(session);
      session.on('error', (error) => log.debug('client connection error', { error: error.message }));
      session.on('close', () => connections.delete(session));
    });
    // Nothing is served before the request is authenticated: RPCs, DNS, and (below) CONNECT streams.
    const admit = (req: http2.Http2ServerRequest, serve: (identity: string) => void): void => {
      authenticateRequest(authenticator, req).then(
        (outcome) => (outcome.ok ? serve(outcome.identity) : answerAuthFailure(req.stream, outcome)),
        (error: Error) => {
          log.error('authentication failed', { error: error.message });
          req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        },
      );
    };
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => admit(req, (identity) => serveRequest(req, res, identity)));
    // CONNECT streams arrive here (not as 'request'); they are served on the raw stream.
    server.on('connect', (req: http2.Http2ServerRequest) => admit(req, (identity) => serveConnect(req, identity)));
  }

  try {
    for (const [i, server] of servers.entries()) {
      const { host, port } = listeners[i]!.listener;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (error) => log.error('server error', { error: error.message }));
    }
  } catch (error) {
    for (const server of servers) server.close();
    throw error;
  }
  let agentListener: AgentListener | undefined;
  if (config.agentListen !== undefined && intercepting !== undefined) {
    try {
      agentListener = await startAgentListener({ ...config.agentListen, ...intercepting, log, maxConnections: limits.agents * 2 });
    } catch (error) {
      for (const server of servers) server.close();
      throw error;
    }
  }
  sessions.start();
  const urls = servers.map((server, i) => urlOf(server.address() as AddressInfo, listeners[i]!.listener.tls !== undefined));
  const url = urls[0]!;
  const tlsUrl = config.tlsListen === undefined ? undefined : urls[1];
  log.info('traffic manager listening', { url, ...(tlsUrl === undefined ? {} : { tlsUrl }), version: config.version });

  return {
    url,
    address: servers[0]!.address() as AddressInfo,
    tlsUrl,
    agentUrl: agentListener?.url,
    cluster,
    sessions,
    get connectionCount() {
      return connections.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        sessions.stop();
        void agentListener?.close();
        let open = servers.length;
        for (const server of servers) server.close(() => --open === 0 && resolve());
        for (const connection of connections) connection.close();
        // Clients that keep streams open after GOAWAY are cut off.
        setTimeout(() => {
          for (const connection of connections) connection.destroy();
        }, 1000).unref();
      }),
  };
}
