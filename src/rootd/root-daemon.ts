// The root daemon: owns the TUN device, the routes and DNS. It serves the user daemon on a Unix socket that only
// the user who started it (through sudo) may open, connects the network on request, and on quit, SIGTERM or
// SIGINT puts everything back. A start after a kill -9 repairs resolv.conf before anything else.
import { ConnectError, Code, type ConnectRouter } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { RootDaemon, NetworkStatusSchema, type NetworkRequest, type NetworkStatus } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { daemonLog, rootDaemonSocket, runDir } from '../local-paths.js';
import { createLogger, type Logger } from '../log/logger.js';
import { parsePrefix } from '../netstack/wire/ip-address.js';
import { listenUnixRpc } from '../rpc/unix-socket-rpc.js';
import { NetworkSession, type NetworkStatus as SessionNetworkStatus } from './network-session.js';
import { ManagedResolvConf } from './resolv-conf.js';

export interface RootDaemonOptions {
  runDir: string;
  tunName: string;
  mtu: number;
  dnsAddress: string;
  resolvConfPath: string;
  dnsMode: 'auto' | 'resolv.conf';
  /** The user who may call the daemon (from sudo's SUDO_UID/SUDO_GID). */
  clientUid?: number;
  clientGid?: number;
}

export function defaultRootDaemonOptions(env: NodeJS.ProcessEnv = process.env): RootDaemonOptions {
  const uid = env.SUDO_UID === undefined ? undefined : Number(env.SUDO_UID);
  const gid = env.SUDO_GID === undefined ? undefined : Number(env.SUDO_GID);
  return {
    runDir: runDir(env),
    tunName: env.KUBETUN_TUN_NAME ?? 'kt0',
    // The fastest device variant in npm run bench (a large MTU with virtio-net offloads): 64 KiB per packet.
    mtu: Number(env.KUBETUN_TUN_MTU ?? 65_000),
    dnsAddress: env.KUBETUN_DNS_ADDRESS ?? '198.18.255.53',
    resolvConfPath: env.KUBETUN_RESOLV_CONF ?? '/etc/resolv.conf',
    // A sandbox workstation is a network namespace: the host's systemd-resolved cannot see its links.
    dnsMode: env.KUBETUN_SANDBOX !== undefined || env.KUBETUN_DNS_MODE === 'resolv.conf' ? 'resolv.conf' : 'auto',
    clientUid: uid,
    clientGid: gid,
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
      connect: (request) => this.serial(() => this.connect(request)),
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

  private async connect(request: NetworkRequest): Promise<NetworkStatus> {
    if (request.managerUrl === '' || request.sessionId === '') {
      throw new ConnectError('connect needs the traffic manager URL and a session id', Code.InvalidArgument);
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
        dnsAddress: this.options.dnsAddress,
        resolvConfPath: this.options.resolvConfPath,
        dnsMode: this.options.dnsMode,
        stateDir: this.options.runDir,
        policy,
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

export async function runRootDaemon(options: RootDaemonOptions = defaultRootDaemonOptions()): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('the root daemon must run as root (it creates a TUN device and changes routes and DNS); start it with sudo');
  }
  await mkdir(options.runDir, { recursive: true, mode: 0o755 });
  const logFile = createWriteStream(daemonLog('root-daemon', options.runDir), { flags: 'a' });
  const log = createLogger((process.env.KUBETUN_LOG_LEVEL as 'info' | undefined) ?? 'info', (line) => logFile.write(line));
  // A daemon killed with -9 may have left resolv.conf pointing at a DNS server that no longer exists.
  if (await new ManagedResolvConf(options.resolvConfPath, options.runDir).restore()) {
    log.warn('repaired resolv.conf left changed by a daemon that did not stop cleanly');
  }
  let stopping = false;
  const service = new RootDaemonService(options, log, () => void shutdown('quit'));
  const server = await listenUnixRpc(rootDaemonSocket(options.runDir), service.routes, {
    mode: 0o600,
    uid: options.clientUid,
    gid: options.clientGid,
  });
  log.info('root daemon started', { socket: rootDaemonSocket(options.runDir), pid: process.pid });
  async function shutdown(why: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info('root daemon stopping', { why });
    await service.disconnect().catch((e: Error) => log.error(`cleanup failed: ${e.message}`));
    server.close();
    logFile.end(() => process.exit(0));
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
