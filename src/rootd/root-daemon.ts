// The root daemon: owns the TUN device, the routes and DNS. It serves the user daemon on a Unix socket that only
// the user who started it (through sudo) may open, connects the network on request, and on quit, SIGTERM or
// SIGINT puts everything back — and so does an unexpected error, before the daemon exits. A start after a kill -9
// (or a reboot: the backup lives in root's state dir) repairs resolv.conf before anything else.
import { ConnectError, Code, type ConnectRouter } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { RootDaemon, NetworkStatusSchema, type NetworkRequest, type NetworkStatus } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { daemonLog, ensureRootRunDir, rootDaemonSocket, rootRunDir, rootStateDir } from '../local-paths.js';
import { openLogFile } from '../log/log-file.js';
import type { Logger } from '../log/logger.js';
import { parsePrefix } from '../netstack/wire/ip-address.js';
import { listenUnixRpc, peerKey } from '../rpc/unix-socket-rpc.js';
import { checkManagerSocket } from './manager-socket-check.js';
import { NetworkSession, type NetworkStatus as SessionNetworkStatus } from './network-session.js';
import { ManagedResolvConf } from './resolv-conf.js';

export interface RootDaemonOptions {
  /** The sandbox whose workstation it serves (a checked name), if any. */
  sandbox?: string;
  /** Its socket and log (and state, until that moves under rootStateDir): rootRunDir(sandbox), root-owned 0755. */
  runDir: string;
  /** Root's own directory that survives a reboot (the resolv.conf backup). */
  stateDir: string;
  tunName: string;
  mtu: number;
  /** Connections to the manager that carry flows (network-session.ts). */
  tunnelConnections: number;
  dnsAddress: string;
  resolvConfPath: string;
  dnsMode: 'auto' | 'resolv.conf';
  /** The user who may call the daemon (from sudo's SUDO_UID/SUDO_GID). */
  clientUid?: number;
  clientGid?: number;
}

/** Four, as KubeVPN keeps: at 80 ms and 0.5 % loss, 8 flows up through one port-forward moved 0.04 of direct. */
export const DEFAULT_TUNNEL_CONNECTIONS = 4;
const MAX_TUNNEL_CONNECTIONS = 16;

function tunnelConnections(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TUNNEL_CONNECTIONS;
  const count = /^[0-9]{1,2}$/.test(text) ? Number(text) : 0;
  if (count < 1 || count > MAX_TUNNEL_CONNECTIONS) {
    throw new Error(`KUBETUN_TUNNEL_CONNECTIONS must be a whole number from 1 to ${MAX_TUNNEL_CONNECTIONS}, not "${text}".`);
  }
  return count;
}

const sudoId = (value: string | undefined): number | undefined => (value !== undefined && /^[0-9]+$/.test(value) ? Number(value) : undefined);

/**
 * The options for the root daemon of `sandbox` (a name checked by the caller, from the command line). Started
 * through sudo (SUDO_UID set), it takes nothing else from the environment: the caller's variables must not choose
 * where root writes or what it configures. Started by root itself, the KUBETUN_* variables tune it (tests, benches).
 */
export function defaultRootDaemonOptions(sandbox: string | undefined, env: NodeJS.ProcessEnv = process.env): RootDaemonOptions {
  const clientUid = sudoId(env.SUDO_UID);
  const own = clientUid === undefined ? env : {};
  return {
    sandbox,
    runDir: rootRunDir(sandbox),
    stateDir: rootStateDir(sandbox),
    tunName: own.KUBETUN_TUN_NAME ?? 'kt0',
    // The fastest device variant in npm run bench (a large MTU with virtio-net offloads): 64 KiB per packet.
    mtu: Number(own.KUBETUN_TUN_MTU ?? 65_000),
    tunnelConnections: tunnelConnections(own.KUBETUN_TUNNEL_CONNECTIONS),
    dnsAddress: own.KUBETUN_DNS_ADDRESS ?? '198.18.255.53',
    resolvConfPath: own.KUBETUN_RESOLV_CONF ?? '/etc/resolv.conf',
    // A sandbox workstation is a network namespace: the host's systemd-resolved cannot see its links.
    dnsMode: sandbox !== undefined || own.KUBETUN_DNS_MODE === 'resolv.conf' ? 'resolv.conf' : 'auto',
    clientUid,
    clientGid: clientUid === undefined ? undefined : sudoId(env.SUDO_GID),
  };
}

function toStatus(status: SessionNetworkStatus | null): NetworkStatus {
  if (status === null) return create(NetworkStatusSchema, { connected: false });
  const f = status.flows;
  return create(NetworkStatusSchema, {
    connected: true,
    tunnel: status.tunnel,
    device: status.device,
    routes: status.routes,
    routeError: status.routeError ?? '',
    clusterInfoError: status.clusterInfoError ?? '',
    tunnelConnections: status.tunnelConnections,
    dns: { ...status.dns, queries: BigInt(status.dns.queries), cacheHits: BigInt(status.dns.cacheHits) },
    flows: {
      tcpOpened: BigInt(f.tcpOpened),
      tcpRefused: BigInt(f.tcpRefused),
      tcpFailed: BigInt(f.tcpFailed),
      tcpActive: BigInt(f.tcpActive),
      udpFlows: BigInt(f.udpFlows),
      bytesUp: BigInt(f.bytesUp),
      bytesDown: BigInt(f.bytesDown),
    },
  });
}

function parseCidrs(list: readonly string[], flag: string): ReturnType<typeof parsePrefix>[] {
  return list.map((cidr) => {
    try {
      return parsePrefix(cidr);
    } catch {
      throw new ConnectError(`${flag} ${cidr}: not a CIDR (like 10.0.0.0/8 or fd00::/8)`, Code.InvalidArgument);
    }
  });
}

export class RootDaemonService {
  private session: NetworkSession | null = null;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: RootDaemonOptions,
    private readonly log: Logger,
    private readonly exit: () => void,
  ) {}

  routes = (router: ConnectRouter): void => {
    router.service(RootDaemon, {
      connect: (request, context) => this.serial(() => this.connect(request, context.values.get(peerKey)?.uid)),
      disconnect: () => this.serial(async () => {
        await this.disconnect();
        return {};
      }),
      status: () => toStatus(this.session?.status() ?? null),
      quit: () => {
        void this.serial(() => this.disconnect()).then(this.exit);
        return {};
      },
    });
  };

  async disconnect(): Promise<void> {
    const session = this.session;
    this.session = null;
    if (session !== null) {
      await session.stop();
      this.log.info('disconnected: routes, DNS and the device removed');
    }
  }

  /** One connect/disconnect at a time: they change the machine's configuration. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.busy.then(work, work);
    this.busy = next.catch(() => undefined);
    return next;
  }

  private async connect(request: NetworkRequest, peerUid: number | undefined): Promise<NetworkStatus> {
    if (request.managerUrl === '' || request.sessionId === '') {
      throw new ConnectError('connect needs the traffic manager URL and a session id', Code.InvalidArgument);
    }
    // Root dials what it is told: a unix: URL must be the caller's own forwarder socket (root may name any).
    if (request.managerUrl.startsWith('unix:') && peerUid !== 0) {
      const problem = peerUid === undefined ? 'the caller is unknown' : checkManagerSocket(request.managerUrl.slice('unix:'.length), peerUid);
      if (problem !== undefined) throw new ConnectError(`manager URL ${request.managerUrl}: ${problem}`, Code.InvalidArgument);
    }
    const policy = {
      alsoProxy: parseCidrs(request.policy?.alsoProxy ?? [], '--also-proxy'),
      neverProxy: parseCidrs(request.policy?.neverProxy ?? [], '--never-proxy'),
      allowConflicting: parseCidrs(request.policy?.allowConflicting ?? [], '--allow-conflicting-subnets'),
    };
    await this.disconnect();
    try {
      this.session = await NetworkSession.start({
        managerUrl: request.managerUrl,
        sessionId: request.sessionId,
        manager: {
          ...(request.managerBearerToken === '' ? {} : { bearerToken: request.managerBearerToken }),
          ...(request.managerCaPem === '' ? {} : { caPem: request.managerCaPem }),
        },
        tunName: this.options.tunName,
        mtu: this.options.mtu,
        tunnelConnections: this.options.tunnelConnections,
        dnsAddress: this.options.dnsAddress,
        resolvConfPath: this.options.resolvConfPath,
        dnsMode: this.options.dnsMode,
        stateDir: this.options.stateDir,
        policy,
        tunnelEndpoints: parseCidrs(request.tunnelEndpoints, 'tunnel endpoint'),
        log: this.log,
      });
    } catch (error) {
      this.log.error('connect failed', { error: (error as Error).message });
      throw new ConnectError((error as Error).message, Code.FailedPrecondition);
    }
    this.log.info('connected', { manager: request.managerUrl, routes: this.session.status().routes });
    return toStatus(this.session.status());
  }
}

/** How long an unexpected error's cleanup may take before the daemon exits anyway. */
const CRASH_CLEANUP_MS = 5_000;

export async function runRootDaemon(options: RootDaemonOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('the root daemon must run as root (it creates a TUN device and changes routes and DNS); start it with sudo');
  }
  const dir = ensureRootRunDir(options.sandbox);
  const logFile = openLogFile(daemonLog('root-daemon', dir));
  const log = logFile.log;
  // A daemon killed with -9 may have left resolv.conf pointing at a DNS server that no longer exists.
  if ((await new ManagedResolvConf(options.resolvConfPath, options.stateDir, log).restore()) === 'restored') {
    log.warn('repaired resolv.conf left changed by a daemon that did not stop cleanly');
  }
  let stopping = false;
  const service = new RootDaemonService(options, log, () => void shutdown('quit'));
  // A bug of ours must not leave DNS pointing at a dead address, nor routes into a dead device: put the host back
  // (bounded in time: a cleanup that hangs must not keep the host waiting), then exit non-zero.
  let crashed = false;
  const crash = async (error: unknown): Promise<void> => {
    log.error('unexpected error; restoring DNS and routes, then exiting', { error: String((error as Error | undefined)?.stack ?? error) });
    if (crashed) return;
    crashed = true;
    setTimeout(() => process.exit(1), CRASH_CLEANUP_MS + 1_000);
    const bound = new Promise((resolve) => setTimeout(resolve, CRASH_CLEANUP_MS));
    const cleanup = service.disconnect().catch((e: Error) => log.error(`cleanup failed: ${e.message}`));
    await Promise.race([cleanup, bound]);
    logFile.close(() => process.exit(1));
  };
  process.on('uncaughtException', (error) => void crash(error));
  process.on('unhandledRejection', (reason) => void crash(reason));
  const server = await listenUnixRpc(rootDaemonSocket(dir), service.routes, {
    mode: 0o600,
    uid: options.clientUid,
    gid: options.clientGid,
    peerUid: options.clientUid,
    log,
  });
  log.info('root daemon started', { socket: rootDaemonSocket(dir), pid: process.pid, clientUid: options.clientUid });
  async function shutdown(why: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info('root daemon stopping', { why });
    await service.disconnect().catch((e: Error) => log.error(`cleanup failed: ${e.message}`));
    server.close();
    logFile.close(() => process.exit(0));
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
