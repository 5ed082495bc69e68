// What the root daemon runs while connected: the tunnel to the traffic manager, the TUN device with the stack,
// routes that follow the cluster's subnets live, and DNS (served in the stack, resolv.conf pointed at it).
// stop() puts the machine back exactly as it was; a later start repairs what a killed daemon left. Cluster info is
// checked before anything of it is applied (cluster-info-check.ts); a rejected update keeps the last good state.
import { formatPrefix, parseIp, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { IpAddress } from '../netstack/wire/reprs.js';
import type { Logger } from '../log/logger.js';
import { TunnelClient } from '../tunnel/tunnel-client.js';
import type { ClusterInfo } from '../gen/kubetun/manager/v1/manager_pb.js';
import { StackDnsServer } from './dns/dns-server.js';
import { ResolvedDns, resolvedRunning } from './dns/resolved-dns.js';
import { DnsResolver } from './dns/dns-resolver.js';
import { UpstreamResolver } from './dns/upstream-resolver.js';
import { EXCLUDED_SUFFIXES, type ClusterDnsFacts } from './dns/cluster-names.js';
import { checkClusterInfo, ClusterInfoError, type CheckedClusterInfo } from './cluster-info-check.js';
import { FlowForwarder } from './flow-forwarder.js';
import { listRoutes, type RouteEntry } from './link-config.js';
import { ManagedResolvConf } from './resolv-conf.js';
import { planRoutes, type RoutePolicy } from './route-plan.js';
import { RouteTable } from './route-table.js';
import { TunStack } from './tun-stack.js';
import { TunnelPool } from './tunnel-pool.js';

export interface NetworkSessionOptions {
  managerUrl: string;
  sessionId: string;
  /** The user's credential and the CA for an https manager, from the user daemon; in memory only, never logged. */
  manager: { bearerToken?: string; caPem?: string };
  /** Connections to the manager that carry flows, the main one included (tunnel-pool.ts); at least 1. */
  tunnelConnections: number;
  tunName: string;
  mtu: number;
  /** The address the DNS server answers on, routed into the TUN device. */
  dnsAddress: string;
  resolvConfPath: string;
  /** auto: systemd-resolved split DNS where it runs, else resolv.conf. A sandbox workstation is always resolv.conf. */
  dnsMode: 'auto' | 'resolv.conf';
  /** Root's own directory that survives a reboot: the resolv.conf backup. */
  stateDir: string;
  policy: RoutePolicy;
  /** The API server's and the manager's addresses: routed into the tunnel, they would loop. */
  tunnelEndpoints: readonly IpPrefix[];
  log: Logger;
}

/** How the machine is pointed at kubetun's DNS server, and put back. */
interface DnsIntegration {
  readonly kind: 'resolved' | 'resolv.conf';
  apply(server: string, searchPath: readonly string[]): Promise<void>;
  restore(): Promise<unknown>;
}

/**
 * The namespace a session's search path starts with (`shop.svc.cluster.local` → shop), as a resolved routing
 * domain; none when it is an excluded suffix, since `~com` would send every .com name through kubetun.
 */
function namespaceOf(searchPath: readonly string[]): string[] {
  const first = searchPath[0]?.split('.') ?? [];
  return first.length > 2 && first[1] === 'svc' && !EXCLUDED_SUFFIXES.includes(first[0]!) ? [first[0]!] : [];
}

/** systemd-resolved split DNS where it runs; otherwise a managed resolv.conf. */
function dnsIntegration(options: NetworkSessionOptions, resolvConf: ManagedResolvConf): DnsIntegration {
  if (options.dnsMode === 'auto' && resolvedRunning(options.resolvConfPath)) {
    const resolved = new ResolvedDns(options.tunName);
    return {
      kind: 'resolved',
      apply: (server, searchPath) => resolved.apply(server, searchPath, namespaceOf(searchPath)),
      restore: () => resolved.revert(),
    };
  }
  return { kind: 'resolv.conf', apply: (server, searchPath) => resolvConf.apply(server, searchPath), restore: () => resolvConf.restore() };
}

export interface NetworkStatus {
  /** The main connection: cluster info, DNS, and flows. */
  tunnel: 'connected' | 'reconnecting';
  /** Connections carrying flows now, the main one included. */
  tunnelConnections: number;
  device: string;
  routes: string[];
  dns: { address: string; clusterDomain: string; searchPath: string[]; queries: number; cacheHits: number };
  flows: FlowForwarder['counters'];
  routeError: string | null;
  clusterInfoError: string | null;
}

/** Host prefixes of the addresses in `texts`; what is not an address (a zone-scoped fe80::1%eth0) is skipped. */
function hostPrefixes(texts: readonly string[]): IpPrefix[] {
  return texts.flatMap((text) => {
    try {
      const address = parseIp(text);
      return [{ address, length: address.length * 8 }];
    } catch {
      return [];
    }
  });
}

function defaultGateways(routes: readonly RouteEntry[]): IpAddress[] {
  const defaults = routes.filter((r) => (r.dst === '0.0.0.0/0' || r.dst === '::/0') && r.gateway !== undefined);
  return hostPrefixes(defaults.map((r) => r.gateway!)).map((p) => p.address);
}

export class NetworkSession {
  private tunnel: TunnelClient | null = null;
  private pool: TunnelPool | null = null;
  private stopped = false;
  private facts: ClusterDnsFacts = { clusterDomain: 'cluster.local', subnets: [] };
  private searchPath: string[] = [];
  private routeError: string | null = null;
  private clusterInfoError: string | null = null;
  private watch: AbortController | null = null;
  /** The cluster-info application in progress: they run one at a time, and stop() waits for it. */
  private applying: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: NetworkSessionOptions,
    private readonly tun: TunStack,
    private readonly routes: RouteTable,
    private readonly dnsConfig: DnsIntegration,
    private readonly forwarder: FlowForwarder,
    private readonly dns: StackDnsServer,
    private readonly resolver: DnsResolver,
    /** Never routed into the tunnel: the tunnel's own endpoints, the upstream DNS servers, kubetun's DNS address. */
    private readonly keptOff: readonly IpPrefix[],
  ) {}

  static async start(options: NetworkSessionOptions): Promise<NetworkSession> {
    const resolvConf = new ManagedResolvConf(options.resolvConfPath, options.stateDir, options.log);
    if ((await resolvConf.restore()) === 'restored') options.log.warn('restored resolv.conf left changed by an earlier daemon');
    const dnsConfig = dnsIntegration(options, resolvConf);
    // With resolved, /etc/resolv.conf names its stub; the servers behind it are listed beside it.
    const upstreamConf = dnsConfig.kind === 'resolved' ? new ManagedResolvConf('/run/systemd/resolve/resolv.conf', options.stateDir) : resolvConf;
    const upstreamServers = (await upstreamConf.original()).nameservers;
    const upstream = new UpstreamResolver(upstreamServers);
    let session: NetworkSession | null = null;
    const forwarder = new FlowForwarder(() => session?.flowTunnel() ?? null);
    const resolver = new DnsResolver({
      cluster: () => {
        const tunnel = session?.tunnel ?? null;
        return tunnel === null ? null : (query) => tunnel.dnsQuery(query);
      },
      upstream: (query) => upstream.query(query),
      facts: () => session?.facts ?? { clusterDomain: 'cluster.local', subnets: [] },
    });
    const dnsAddress = parseIp(options.dnsAddress);
    const dns = new StackDnsServer(resolver, dnsAddress, options.log);
    const tun = await TunStack.open(
      {
        name: options.tunName,
        mtu: options.mtu,
        vnetHeader: true,
        offload: true,
        addresses: [],
        routes: [`${options.dnsAddress}/${dnsAddress.length === 4 ? 32 : 128}`],
      },
      {
        tcpConnect: (request) => (dns.serves(request.local) ? dns.serveTcp(request) : forwarder.forwardTcp(request)),
        udpFlow: (flow) => (dns.serves(flow.local) ? dns.serveUdp(flow) : forwarder.forwardUdp(flow)),
      },
    );
    const keptOff = [...options.tunnelEndpoints, ...hostPrefixes([...upstreamServers, options.dnsAddress])];
    session = new NetworkSession(options, tun, new RouteTable(options.tunName), dnsConfig, forwarder, dns, resolver, keptOff);
    // A bug of ours met while handling a packet: the stack drops the packet and goes on; say so, at most once a
    // second, since it may repeat for every packet of a flow.
    let lastReport = 0;
    tun.stack.onInternalError = (error) => {
      const now = Date.now();
      if (now - lastReport < 1000) return;
      lastReport = now;
      options.log.error('internal error in the network stack; the packet was dropped', { error: String((error as Error).stack ?? error) });
    };
    try {
      await session.connectTunnel();
    } catch (error) {
      await session.stop();
      throw error;
    }
    // Only once the main connection proved the session and the credentials, so that a failing start is one error.
    if (options.tunnelConnections > 1) session.pool = new TunnelPool(options.tunnelConnections - 1, () => session.openTunnel(), options.log);
    return session;
  }

  status(): NetworkStatus {
    return {
      tunnel: this.tunnel === null ? 'reconnecting' : 'connected',
      tunnelConnections: (this.tunnel === null ? 0 : 1) + (this.pool?.connected ?? 0),
      device: this.options.tunName,
      routes: this.routes.routes,
      dns: {
        address: this.options.dnsAddress,
        clusterDomain: this.facts.clusterDomain,
        searchPath: this.searchPath,
        queries: this.dns.queries,
        cacheHits: this.resolver.cache.hits,
      },
      flows: { ...this.forwarder.counters },
      routeError: this.routeError,
      clusterInfoError: this.clusterInfoError,
    };
  }

  /** Withdraws routes and DNS, removes the device and closes the tunnel. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watch?.abort();
    await this.applying;
    await this.dnsConfig.restore().catch((e: Error) => this.options.log.error(`restoring DNS (${this.dnsConfig.kind}): ${e.message}`));
    await this.routes.clear().catch((e: Error) => this.options.log.error(`removing routes: ${e.message}`));
    this.tun.close();
    this.pool?.close();
    this.tunnel?.close();
    this.tunnel = null;
  }

  /** The connection a new flow goes over: of those up, the one with the fewest open streams. */
  private flowTunnel(): TunnelClient | null {
    return this.pool === null ? this.tunnel : this.pool.pick(this.tunnel);
  }

  private openTunnel(): Promise<TunnelClient> {
    const { bearerToken, caPem } = this.options.manager;
    return TunnelClient.connect(this.options.managerUrl, {
      sessionId: this.options.sessionId,
      ...(bearerToken === undefined ? {} : { bearerToken }),
      ...(caPem === undefined ? {} : { tls: { ca: caPem } }),
    });
  }

  private async connectTunnel(): Promise<void> {
    const tunnel = await this.openTunnel();
    // A reconnect that finishes after stop() must not keep its tunnel (stop() closed the one it knew).
    const abandonIfStopped = (): void => {
      if (!this.stopped) return;
      tunnel.close();
      throw new Error('the network session was stopped');
    };
    abandonIfStopped();
    this.tunnel = tunnel;
    tunnel.once('disconnected', (error) => {
      if (this.tunnel === tunnel) this.tunnel = null;
      if (!this.stopped) {
        this.options.log.warn('tunnel to the traffic manager lost; reconnecting', { error: error.message });
        void this.reconnect();
      }
    });
    const watch = new AbortController();
    this.watch?.abort();
    this.watch = watch;
    const stream = tunnel.manager.watchClusterInfo({ id: this.options.sessionId }, { signal: watch.signal });
    const first = await stream[Symbol.asyncIterator]().next();
    if (first.done === true) throw new Error('the traffic manager ended the cluster-info stream at once');
    abandonIfStopped();
    await this.applyClusterInfo(first.value);
    void (async () => {
      try {
        // A later change that cannot be applied (a new conflict) keeps the routes as they were; it is logged and
        // shown in status.
        for await (const info of stream) await this.applyClusterInfo(info).catch(() => undefined);
      } catch (error) {
        if (!watch.signal.aborted) this.options.log.warn(`cluster-info stream ended: ${(error as Error).message}`);
      }
    })();
  }

  private async reconnect(): Promise<void> {
    for (let delay = 250; !this.stopped; delay = Math.min(delay * 2, 8000)) {
      await new Promise((r) => setTimeout(r, delay));
      try {
        await this.connectTunnel();
        this.options.log.info('tunnel to the traffic manager re-established');
        return;
      } catch (error) {
        if (!this.stopped) this.options.log.warn(`reconnect failed: ${(error as Error).message}`);
      }
    }
  }

  /**
   * Applies cluster info after any application still in progress; none once stop() has begun, since a late one
   * would change routes and resolv.conf again after stop() restored them (and back up kubetun's own resolv.conf).
   */
  private applyClusterInfo(info: ClusterInfo): Promise<void> {
    const run = this.applying.then(() => (this.stopped ? undefined : this.applyNow(info)));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(info: ClusterInfo): Promise<void> {
    const localRoutes = await listRoutes();
    let checked: CheckedClusterInfo;
    try {
      checked = checkClusterInfo(info, { alsoProxy: this.options.policy.alsoProxy, defaultGateways: defaultGateways(localRoutes) });
    } catch (error) {
      if (!(error instanceof ClusterInfoError)) throw error;
      // Not a broken tunnel: the session stays, with what it had, until the manager sends something acceptable.
      this.clusterInfoError = error.message;
      this.options.log.error(error.message, { revision: String(info.revision) });
      return;
    }
    this.clusterInfoError = null;
    const policy = { ...this.options.policy, neverProxy: [...this.options.policy.neverProxy, ...this.keptOff] };
    try {
      const wanted = planRoutes(checked.subnets, localRoutes, this.options.tunName, policy);
      const { added, removed } = await this.routes.apply(wanted);
      this.routeError = null;
      if (added.length + removed.length > 0) this.options.log.info('routes updated', { added, removed });
    } catch (error) {
      this.routeError = (error as Error).message;
      this.options.log.error(this.routeError);
      throw error;
    }
    this.facts = { clusterDomain: checked.clusterDomain, subnets: checked.subnets, namespaces: checked.namespaces };
    this.resolver.cache.clear();
    this.searchPath = checked.searchPath;
    await this.dnsConfig.apply(this.options.dnsAddress, this.searchPath);
    this.options.log.info('cluster info applied', { subnets: checked.subnets.map(formatPrefix), revision: String(info.revision) });
  }
}
