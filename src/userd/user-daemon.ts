// The user daemon: runs as the user, owns the session with the traffic manager (arrive, keep alive, depart,
// re-arrive when the manager forgot it), and asks the root daemon to connect the network for that session.
// Without a manager URL it finds the manager through the user's kubeconfig and serves it to both daemons as a
// local socket backed by port-forwards (ManagerForwarder). With one, it authenticates (manager-credentials.ts) and
// hands the root daemon the same credentials for its own connection. Serves the CLI on a Unix socket only its user can open;
// the session's intercepts are kept by InterceptRegistry (intercepts.ts), renewed with the session.
import { ConnectError, Code, createClient, type Client, type ConnectRouter } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { hostname, userInfo } from 'node:os';
import {
  DaemonVersionSchema,
  RootDaemon,
  SessionStatusSchema,
  UserDaemon,
  type ConnectRequest,
  type NetworkStatus,
  type RoutePolicy,
  type SessionStatus,
} from '../gen/kubetun/daemon/v1/daemon_pb.js';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError, loadKubeConfig } from '../k8s/kube-client.js';
import { awaitManager, DEFAULT_MANAGER_NAMESPACE, locateManager } from '../k8s/manager-locator.js';
import { openPortForward } from '../k8s/port-forward.js';
import { daemonLog, managerForwardSocket, rootDaemonSocket, rootRunDir, sandboxName, userDaemonSocket, userRunDir } from '../local-paths.js';
import { openLogFile } from '../log/log-file.js';
import type { Logger } from '../log/logger.js';
import { listenUnixRpc, unixRpcTransport } from '../rpc/unix-socket-rpc.js';
import { ERROR_MESSAGE_HEADER } from '../tunnel/protocol.js';
import { TunnelClient, type TunnelClientOptions } from '../tunnel/tunnel-client.js';
import { kubetunVersion } from '../version.js';
import { InterceptRegistry, type InterceptSession } from './intercepts.js';
import { managerCredentials, type ManagerCredentials } from './manager-credentials.js';
import { ManagerForwarder } from './manager-forwarder.js';
import { withTunnelEndpoints } from './tunnel-endpoints.js';

const REMAIN_INTERVAL_MS = 5_000;

/** The manager reached through the Kubernetes API. */
interface KubeLink {
  config: KubeConfig;
  context: string;
  managerNamespace: string;
  forwarder: ManagerForwarder;
  /** The pod the latest port-forward reached. */
  pod: string;
}

interface ActiveSession {
  request: ConnectRequest;
  /** What both daemons dial: the given URL, or the forwarder's socket. */
  managerUrl: string;
  kube: KubeLink | null;
  /** The kubeconfig whose user authenticates to a manager reached by URL; null otherwise. */
  credentialsKube: KubeConfig | null;
  /** The latest credentials: fetched again before every (re)connection and re-arrival. */
  credentials: ManagerCredentials;
  /** The namespace short names resolve in (the request's, else the context's, else default). */
  namespace: string;
  tunnel: TunnelClient;
  sessionId: string;
  podCidrs: string[];
  serviceCidrs: string[];
  managerVersion: string;
  state: 'connected' | 'reconnecting';
  keepalive: NodeJS.Timeout;
}

export class UserDaemonService {
  private active: ActiveSession | null = null;
  private readonly root: Client<typeof RootDaemon>;
  private readonly intercepts: InterceptRegistry;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly exit: () => void,
    rootSocket = rootDaemonSocket(dir),
  ) {
    this.intercepts = new InterceptRegistry(() => this.interceptSession(), log);
    this.root = withTunnelEndpoints(createClient(RootDaemon, unixRpcTransport(rootSocket)), () => this.active?.request);
  }

  routes = (router: ConnectRouter): void => {
    router.service(UserDaemon, {
      connect: (request) => this.connect(request),
      status: () => this.status(),
      quit: async () => {
        await this.disconnect();
        await this.root.quit({}).catch(() => undefined);
        setImmediate(this.exit);
        return {};
      },
      version: () => create(DaemonVersionSchema, { version: kubetunVersion() }),
      ...this.intercepts.rpcs,
    });
  };

  private interceptSession(): InterceptSession | null {
    const active = this.active;
    if (active === null || active.state !== 'connected') return null;
    return { tunnel: active.tunnel, sessionId: active.sessionId, namespace: active.namespace, kube: active.kube?.config ?? active.credentialsKube };
  }

  async connect(request: ConnectRequest): Promise<SessionStatus> {
    if (this.active !== null) {
      const was = this.active.request;
      const same =
        was.managerUrl === request.managerUrl &&
        was.namespace === request.namespace &&
        was.kubeconfig === request.kubeconfig &&
        was.context === request.context &&
        was.managerNamespace === request.managerNamespace &&
        was.managerCaFile === request.managerCaFile &&
        was.managerTokenFile === request.managerTokenFile;
      if (same) {
        await this.ensureNetwork(this.active);
        return this.status();
      }
      await this.disconnect();
    }
    let kube: KubeLink | null = null;
    let namespace = request.namespace || 'default';
    let tunnel: TunnelClient;
    // A manager reached over https authenticates the kubeconfig user, unless a shared token file is given.
    const byKubeconfig = request.managerUrl === '' || (request.managerUrl.startsWith('https:') && request.managerTokenFile === '');
    const config = byKubeconfig ? kubeConfigFor(request) : null;
    if (config !== null) namespace = request.namespace || config.getContextObject(config.getCurrentContext())?.namespace || 'default';
    if (config !== null && request.managerUrl === '') {
      kube = await this.openKubeLink(config, request.managerNamespace || DEFAULT_MANAGER_NAMESPACE, request.managerWaitSeconds * 1000);
    }
    const credentialsKube = kube === null ? config : null;
    const managerUrl = kube?.forwarder.url ?? request.managerUrl;
    let credentials: ManagerCredentials;
    try {
      credentials = await managerCredentials(request, credentialsKube);
      tunnel = await TunnelClient.connect(managerUrl, tunnelOptions(credentials));
    } catch (error) {
      if (error instanceof ConnectError) {
        kube?.forwarder.close();
        throw error;
      }
      kube?.forwarder.close();
      const message =
        kube === null
          ? `${(error as Error).message} Is the traffic manager running? Check the URL (--manager-url or KUBETUN_MANAGER_URL).`
          : `cannot reach the traffic manager pod ${kube.managerNamespace}/${kube.pod} through a port-forward: ${kube.forwarder.lastError?.message ?? (error as Error).message}`;
      throw new ConnectError(message, Code.Unavailable);
    }
    let session: string;
    let info: Awaited<ReturnType<typeof firstClusterInfo>>;
    try {
      session = await this.arrive(tunnel, namespace);
      info = await firstClusterInfo(tunnel, session);
    } catch (error) {
      tunnel.close();
      kube?.forwarder.close();
      throw error;
    }
    const active: ActiveSession = {
      request,
      namespace,
      managerUrl,
      kube,
      credentialsKube,
      credentials,
      tunnel,
      sessionId: session,
      podCidrs: info.podCidrs,
      serviceCidrs: info.serviceCidrs,
      managerVersion: info.version,
      state: 'connected',
      keepalive: setInterval(() => void this.remain(), REMAIN_INTERVAL_MS),
    };
    this.active = active;
    this.watchTunnel(active);
    try {
      await this.connectRoot(active);
    } catch (error) {
      await this.disconnect();
      throw error instanceof ConnectError ? error : new ConnectError(`the root daemon: ${(error as Error).message}`, Code.Unavailable);
    }
    this.log.info('connected', { manager: kube === null ? managerUrl : `${kube.managerNamespace}/${kube.pod}`, namespace });
    return this.status();
  }

  /**
   * Finds the manager (so that a missing install, or a pod not ready within `waitMs`, is reported now, clearly) and
   * serves it on the forwarder socket; each connection made there re-locates the pod and opens a new port-forward to it.
   */
  private async openKubeLink(config: KubeConfig, managerNamespace: string, waitMs: number): Promise<KubeLink> {
    let pod: string;
    try {
      pod = (await awaitManager(config, managerNamespace, waitMs, (why) => this.log.info('waiting for a ready traffic manager pod', { why, waitMs }))).pod;
    } catch (error) {
      throw new ConnectError((error as Error).message, Code.FailedPrecondition);
    }
    const dial = async () => {
      const target = await locateManager(config, managerNamespace);
      const stream = await openPortForward(config, target);
      if (link.pod !== target.pod) {
        this.log.info('port-forward to a new traffic manager pod', { pod: target.pod });
        link.pod = target.pod;
      }
      return stream;
    };
    // dial runs only for connections accepted after listen() resolved, when link is set.
    const link: KubeLink = { config, context: config.getCurrentContext(), managerNamespace, pod, forwarder: await ManagerForwarder.listen(managerForwardSocket(this.dir), dial, this.log) };
    return link;
  }

  /** A root daemon that was restarted (SIGTERM, kill -9) knows nothing of the session: connect it again. */
  private async ensureNetwork(active: ActiveSession): Promise<void> {
    const network = await this.root.status({}).catch(() => null);
    if (network?.connected === true) return;
    await this.refreshCredentials(active);
    await this.connectRoot(active);
  }

  /** The root daemon opens its own connection to the manager, with the session and the user's credentials. */
  private async connectRoot(active: ActiveSession): Promise<void> {
    await this.root.connect({
      managerUrl: active.managerUrl,
      sessionId: active.sessionId,
      policy: active.request.policy as RoutePolicy,
      managerBearerToken: active.credentials.bearerToken ?? '',
      managerCaPem: active.credentials.caPem ?? '',
    });
  }

  /** Fresh credentials (a token may have been rotated or expired), used from the next request on. */
  private async refreshCredentials(active: ActiveSession): Promise<void> {
    active.credentials = await managerCredentials(active.request, active.credentialsKube);
    active.tunnel.bearerToken = active.credentials.bearerToken;
  }

  async status(): Promise<SessionStatus> {
    const active = this.active;
    if (active === null) return create(SessionStatusSchema, { state: 'disconnected' });
    let network: NetworkStatus | undefined;
    try {
      network = await this.root.status({});
    } catch {
      network = undefined;
    }
    return create(SessionStatusSchema, {
      state: active.state,
      managerUrl: active.request.managerUrl,
      context: active.kube?.context ?? '',
      managerNamespace: active.kube?.managerNamespace ?? '',
      managerPod: active.kube?.pod ?? '',
      sessionId: active.sessionId,
      namespace: active.namespace,
      podCidrs: active.podCidrs,
      serviceCidrs: active.serviceCidrs,
      managerVersion: active.managerVersion,
      network,
    });
  }

  async disconnect(): Promise<void> {
    const active = this.active;
    this.active = null;
    if (active === null) return;
    clearInterval(active.keepalive);
    // Departing ends the session's intercepts at the manager.
    this.intercepts.clear();
    await active.tunnel.manager.depart({ id: active.sessionId }).catch(() => undefined);
    active.tunnel.close();
    await this.root.disconnect({}).catch((e: Error) => this.log.warn(`root daemon disconnect: ${e.message}`));
    active.kube?.forwarder.close();
    this.log.info('disconnected');
  }

  private async arrive(tunnel: TunnelClient, namespace: string): Promise<string> {
    const session = await tunnel.manager
      .arriveAsClient({
        name: `${userInfo().username}@${hostname()}`,
        namespace,
        hostname: hostname(),
        version: kubetunVersion(),
      })
      .catch((error: unknown) => {
        throw refusalWithReason(error);
      });
    tunnel.sessionId = session.id;
    return session.id;
  }

  private async remain(): Promise<void> {
    const active = this.active;
    if (active === null || active.state !== 'connected') return;
    try {
      await active.tunnel.manager.remain({ id: active.sessionId });
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.NotFound) {
        // The manager forgot us (it restarted, or we were away longer than its TTL): arrive again.
        this.log.warn('session expired at the manager; arriving again');
        await this.rearrive(active).then(() => this.intercepts.sessionRenewed()).catch((e: Error) => this.log.warn(`re-arrive failed: ${e.message}`));
      } else if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
        // The token expired (an exec plugin's or a ServiceAccount's): fetch a fresh one; the root daemon, whose own
        // connection sends the same token, is connected again with it.
        this.log.warn('the traffic manager no longer accepts our credentials; refreshing them');
        const before = active.credentials.bearerToken;
        await this.refreshCredentials(active)
          .then(() => (active.credentials.bearerToken === before ? undefined : this.connectRoot(active)))
          .catch((e: Error) => this.log.warn(`refreshing the credentials failed: ${e.message}`));
      }
    }
  }

  private async rearrive(active: ActiveSession): Promise<void> {
    await this.refreshCredentials(active);
    active.sessionId = await this.arrive(active.tunnel, active.namespace);
    await this.connectRoot(active);
  }

  /** When the connection to the manager drops, reconnect with backoff and carry on with a new session. */
  private watchTunnel(active: ActiveSession): void {
    active.tunnel.once('disconnected', (error) => {
      if (this.active !== active) return;
      active.state = 'reconnecting';
      this.log.warn('lost the traffic manager; reconnecting', { error: error.message });
      void (async () => {
        for (let delay = 250; this.active === active; delay = Math.min(delay * 2, 8000)) {
          await new Promise((r) => setTimeout(r, delay));
          try {
            active.credentials = await managerCredentials(active.request, active.credentialsKube);
            active.tunnel = await TunnelClient.connect(active.managerUrl, tunnelOptions(active.credentials));
            await this.rearrive(active);
            active.state = 'connected';
            this.watchTunnel(active);
            void this.intercepts.sessionRenewed();
            this.log.info('reconnected to the traffic manager');
            return;
          } catch (e) {
            this.log.warn(`reconnect failed: ${(e as Error).message}`);
          }
        }
      })();
    });
  }
}

/** A refusal of the manager's authentication says why (its kubetun-error-message), not only "HTTP 401". */
function refusalWithReason(error: unknown): unknown {
  if (!(error instanceof ConnectError)) return error;
  const why = error.metadata.get(ERROR_MESSAGE_HEADER);
  if (why === null || ![Code.Unauthenticated, Code.PermissionDenied, Code.Unavailable].includes(error.code)) return error;
  return new ConnectError(`the traffic manager refused the session: ${why}`, error.code);
}

function tunnelOptions(credentials: ManagerCredentials): TunnelClientOptions {
  return {
    ...(credentials.bearerToken === undefined ? {} : { bearerToken: credentials.bearerToken }),
    ...(credentials.caPem === undefined ? {} : { tls: { ca: credentials.caPem } }),
  };
}

/** The request's kubeconfig (files joined like KUBECONFIG; empty: the default) with its context. */
function kubeConfigFor(request: ConnectRequest): KubeConfig {
  try {
    const env = request.kubeconfig === '' ? process.env : { ...process.env, KUBECONFIG: request.kubeconfig };
    return loadKubeConfig({ context: request.context || undefined, env });
  } catch (error) {
    if (error instanceof KubeConfigError) throw new ConnectError(error.message, Code.InvalidArgument);
    throw error;
  }
}

async function firstClusterInfo(tunnel: TunnelClient, session: string) {
  const controller = new AbortController();
  try {
    for await (const info of tunnel.manager.watchClusterInfo({ id: session }, { signal: controller.signal })) return info;
  } finally {
    controller.abort();
  }
  throw new ConnectError('the traffic manager sent no cluster info', Code.Unavailable);
}

/** Runs in the user's own directory (userRunDir, 0700); the root daemon's socket is in rootRunDir. */
export async function runUserDaemon(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const dir = userRunDir(env);
  const logFile = openLogFile(daemonLog('user-daemon', dir));
  const log = logFile.log;
  let stopping = false;
  const service = new UserDaemonService(dir, log, () => void shutdown('quit'), rootDaemonSocket(rootRunDir(sandboxName(env))));
  const server = await listenUnixRpc(userDaemonSocket(dir), service.routes, { mode: 0o600, log });
  log.info('user daemon started', { socket: userDaemonSocket(dir), pid: process.pid });
  async function shutdown(why: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info('user daemon stopping', { why });
    await service.disconnect().catch(() => undefined);
    server.close();
    logFile.close(() => process.exit(0));
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
