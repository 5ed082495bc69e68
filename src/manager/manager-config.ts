// The traffic manager's settings from flags and the environment (flags win). CIDRs and DNS facts from the
// environment are Telepresence's `podCIDRStrategy: environment`: a real mode for clusters where the manager may
// not list nodes.

import { isIP } from 'node:net';
import { parsePrefix, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { ClusterFacts, DnsServerAddress } from './cluster-info-source.js';
import { isLogLevel, type LogLevel } from '../log/logger.js';
import { isLoopbackHost } from '../net/loopback.js';
import { isPodCidrStrategy, POD_CIDR_STRATEGIES, type PodCidrStrategy } from './discovery/pod-cidrs.js';

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Flags as commander gives them; every one is optional and falls back to the environment, then a default. */
export interface ManagerFlags {
  listen?: string;
  healthListen?: string;
  podCidr?: string[];
  serviceCidr?: string[];
  dnsServer?: string;
  clusterDomain?: string;
  allow?: string[];
  sessionTtl?: string;
  dialTimeout?: string;
  udpIdleTimeout?: string;
  tlsCert?: string;
  tlsKey?: string;
  listenTls?: string;
  clientTokenFile?: string;
  logLevel?: string;
  podCidrStrategy?: string;
  kubeconfig?: string;
  agentListen?: string;
  webhookListen?: string;
  webhookCert?: string;
  webhookKey?: string;
  agentImage?: string;
  agentManagerAddress?: string;
}

/** How the manager learns the cluster's networking from the Kubernetes API (src/manager/discovery). */
export interface DiscoverySettings {
  podCidrStrategy: PodCidrStrategy;
  /** Where the Kubernetes config comes from; undefined when there is none (only the flags' facts are used). */
  kube: { kubeconfig?: string; inCluster: boolean } | undefined;
  /** Facts the flags gave: discovery leaves them alone. */
  fixed: { podCidrs: boolean; serviceCidrs: boolean; dns: boolean; clusterDomain: boolean };
}

export interface ManagerSettings {
  host: string;
  port: number;
  /** Where /healthz and /readyz are served (src/manager/health-endpoint.ts); undefined: nowhere. */
  health?: { host: string; port: number };
  cluster: ClusterFacts;
  allow: IpPrefix[];
  sessionTtlMs: number;
  dialTimeoutMs: number;
  udpIdleMs: number;
  /** The certificate of the TLS listener: `--listen-tls`'s when given, else `--listen` serves TLS. */
  tls?: { certFile: string; keyFile: string };
  /** A second listener, serving TLS beside an h2c `--listen` on loopback (the in-cluster manager exposed directly). */
  tlsListen?: { host: string; port: number };
  /** How clients of a TLS listener authenticate; undefined when only loopback serves (port-forwards). */
  clientAuth?: ClientAuthSettings;
  logLevel: LogLevel;
  discovery: DiscoverySettings;
  /** Where traffic agents arrive (h2c, the Agent service and the agents' streams only); undefined: no agents. */
  agentListen?: { host: string; port: number };
  /** The mutating admission webhook's TLS listener (src/manager/webhook); undefined: no webhook. */
  webhook?: WebhookSettings;
}

/** What the webhook serves on, and what it injects. */
export interface WebhookSettings {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** The agent container's image: the manager's own, run with the `traffic-agent` argument. */
  agentImage: string;
  /** Where injected agents find the manager's agent listener, e.g. `traffic-manager.kubetun.svc:8083`. */
  managerAddress: { host: string; port: number };
}

/** A shared token (a manager outside any cluster), or the clients' Kubernetes credentials checked with the API. */
export type ClientAuthSettings = { mode: 'token'; tokenFile: string } | { mode: 'kubernetes' };

/** The environment variable behind each flag; lists are comma separated. */
export const ENVIRONMENT = {
  listen: 'KUBETUN_LISTEN',
  healthListen: 'KUBETUN_HEALTH_LISTEN',
  podCidr: 'KUBETUN_POD_CIDRS',
  serviceCidr: 'KUBETUN_SERVICE_CIDRS',
  dnsServer: 'KUBETUN_DNS_SERVER',
  clusterDomain: 'KUBETUN_CLUSTER_DOMAIN',
  allow: 'KUBETUN_ALLOW',
  sessionTtl: 'KUBETUN_SESSION_TTL',
  dialTimeout: 'KUBETUN_DIAL_TIMEOUT',
  udpIdleTimeout: 'KUBETUN_UDP_IDLE_TIMEOUT',
  tlsCert: 'KUBETUN_TLS_CERT',
  tlsKey: 'KUBETUN_TLS_KEY',
  listenTls: 'KUBETUN_LISTEN_TLS',
  clientTokenFile: 'KUBETUN_CLIENT_TOKEN_FILE',
  logLevel: 'KUBETUN_LOG_LEVEL',
  podCidrStrategy: 'KUBETUN_POD_CIDR_STRATEGY',
  kubeconfig: 'KUBECONFIG',
  agentListen: 'KUBETUN_AGENT_LISTEN',
  webhookListen: 'KUBETUN_WEBHOOK_LISTEN',
  webhookCert: 'KUBETUN_WEBHOOK_CERT',
  webhookKey: 'KUBETUN_WEBHOOK_KEY',
  agentImage: 'KUBETUN_AGENT_IMAGE',
  agentManagerAddress: 'KUBETUN_AGENT_MANAGER_ADDRESS',
} as const satisfies Record<keyof ManagerFlags, string>;

type Env = Record<string, string | undefined>;

type ListFlag = 'podCidr' | 'serviceCidr' | 'allow';

function single(flags: ManagerFlags, env: Env, key: Exclude<keyof ManagerFlags, ListFlag>): string | undefined {
  const value = flags[key] ?? env[ENVIRONMENT[key]];
  return value === '' ? undefined : value;
}

function list(flags: ManagerFlags, env: Env, key: ListFlag): string[] {
  const given = flags[key];
  if (given !== undefined && given.length > 0) return given.flatMap((v) => v.split(','));
  return (env[ENVIRONMENT[key]] ?? '').split(',');
}

function cidrs(texts: string[], flag: string): IpPrefix[] {
  return texts
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((text) => {
      try {
        return parsePrefix(text);
      } catch (error) {
        throw new ConfigError(`--${flag}: ${(error as Error).message}`);
      }
    });
}

/** `host:port`, `[v6]:port`, or (when `defaultPort` is given) a bare host or IPv6 address. */
export function parseHostPort(text: string, flag: string, defaultPort?: number): { host: string; port: number } {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (isIP(text) !== 6 && text.includes(':')) {
    host = text.slice(0, text.lastIndexOf(':'));
    portText = text.slice(text.lastIndexOf(':') + 1);
  }
  const port = portText === undefined ? defaultPort : /^[0-9]{1,5}$/.test(portText) ? Number(portText) : undefined;
  if (port === undefined || port > 65535 || !/^[A-Za-z0-9.:-]+$/.test(host)) {
    const form = defaultPort === undefined ? 'HOST:PORT' : 'IP or IP:PORT';
    throw new ConfigError(`--${flag} "${text}" is not ${form} (IPv6 in brackets: [::1]:53).`);
  }
  return { host, port };
}

function seconds(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback * 1000;
  const value = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || !(value > 0)) {
    throw new ConfigError(`--${flag} "${text}" is not a positive number of seconds.`);
  }
  return value * 1000;
}

function dnsServer(text: string | undefined): DnsServerAddress | undefined {
  if (text === undefined) return undefined;
  const { host, port } = parseHostPort(text, 'dns-server', 53);
  if (isIP(host) === 0) throw new ConfigError(`--dns-server "${text}" must be an IP address, optionally with :PORT.`);
  return { ip: host, port };
}

function discoverySettings(flags: ManagerFlags, env: Env, cluster: ClusterFacts): DiscoverySettings {
  const kubeconfig = single(flags, env, 'kubeconfig');
  const inCluster = (env.KUBERNETES_SERVICE_HOST ?? '') !== '';
  const kube = kubeconfig !== undefined ? { kubeconfig, inCluster } : inCluster ? { inCluster } : undefined;
  const strategy = single(flags, env, 'podCidrStrategy') ?? (kube ? 'auto' : 'environment');
  if (!isPodCidrStrategy(strategy)) {
    throw new ConfigError(`--pod-cidr-strategy "${strategy}" is not one of ${POD_CIDR_STRATEGIES.join(', ')}.`);
  }
  if (strategy !== 'environment' && kube === undefined) {
    throw new ConfigError(
      `--pod-cidr-strategy ${strategy} reads the Kubernetes API, and there is no Kubernetes config: run in a pod ` +
        '(KUBERNETES_SERVICE_HOST set) or give --kubeconfig (or KUBECONFIG); or use --pod-cidr-strategy environment with --pod-cidr.',
    );
  }
  return {
    podCidrStrategy: strategy,
    kube,
    fixed: {
      podCidrs: strategy === 'environment' || cluster.podCidrs.length > 0,
      serviceCidrs: cluster.serviceCidrs.length > 0,
      dns: cluster.dns !== undefined,
      clusterDomain: single(flags, env, 'clusterDomain') !== undefined,
    },
  };
}

/**
 * Only a loopback listener may serve h2c without client authentication (a port-forward reaches it, authorized by
 * the API server); any other needs TLS, and every TLS listener authenticates its clients.
 */
function clientAuthSettings(settings: ManagerSettings, tokenFile: string | undefined): ClientAuthSettings | undefined {
  const mainIsTls = settings.tls !== undefined && settings.tlsListen === undefined;
  if (!mainIsTls && !isLoopbackHost(settings.host)) {
    throw new ConfigError(
      `--listen ${settings.host}:${settings.port} is not a loopback address, and a listener others can reach must use TLS ` +
        'with client authentication: listen on 127.0.0.1 (clients come through a port-forward), or give --tls-cert/--tls-key ' +
        '(with --client-token-file outside a cluster), or add --listen-tls for direct clients.',
    );
  }
  if (settings.tls === undefined) {
    if (tokenFile !== undefined) throw new ConfigError('--client-token-file authenticates TLS clients: give --tls-cert and --tls-key too.');
    return undefined;
  }
  if (tokenFile !== undefined) return { mode: 'token', tokenFile };
  if (settings.discovery.kube === undefined) {
    throw new ConfigError(
      'a TLS listener authenticates its clients, and without a Kubernetes API (in a pod, or --kubeconfig) there is no one to ask: ' +
        'give --client-token-file with a shared token (clients pass it with kubetun connect --manager-token-file).',
    );
  }
  return { mode: 'kubernetes' };
}

export function managerSettings(flags: ManagerFlags, env: Env): ManagerSettings {
  const listen = parseHostPort(single(flags, env, 'listen') ?? '127.0.0.1:8081', 'listen');
  const clusterDomain = (single(flags, env, 'clusterDomain') ?? 'cluster.local').replace(/^\.+|\.+$/g, '');
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(clusterDomain)) {
    throw new ConfigError(`--cluster-domain "${clusterDomain}" is not a DNS domain such as cluster.local.`);
  }
  const logLevel = single(flags, env, 'logLevel') ?? 'info';
  if (!isLogLevel(logLevel)) throw new ConfigError(`--log-level "${logLevel}" is not one of debug, info, warn, error.`);
  const certFile = single(flags, env, 'tlsCert');
  const keyFile = single(flags, env, 'tlsKey');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('--tls-cert and --tls-key go together: give both for TLS, or neither for h2c.');
  }
  const listenTlsText = single(flags, env, 'listenTls');
  const tlsListen = listenTlsText === undefined ? undefined : parseHostPort(listenTlsText, 'listen-tls');
  if (tlsListen !== undefined && certFile === undefined) {
    throw new ConfigError('--listen-tls serves TLS: give its certificate with --tls-cert and --tls-key.');
  }
  const cluster: ClusterFacts = {
    podCidrs: cidrs(list(flags, env, 'podCidr'), 'pod-cidr'),
    serviceCidrs: cidrs(list(flags, env, 'serviceCidr'), 'service-cidr'),
    dns: dnsServer(single(flags, env, 'dnsServer')),
    clusterDomain,
  };
  const settings: ManagerSettings = {
    host: listen.host,
    port: listen.port,
    cluster,
    allow: cidrs(list(flags, env, 'allow'), 'allow'),
    sessionTtlMs: seconds(single(flags, env, 'sessionTtl'), 'session-ttl', 60),
    dialTimeoutMs: seconds(single(flags, env, 'dialTimeout'), 'dial-timeout', 5),
    udpIdleMs: seconds(single(flags, env, 'udpIdleTimeout'), 'udp-idle-timeout', 60),
    logLevel,
    discovery: discoverySettings(flags, env, cluster),
  };
  if (certFile !== undefined && keyFile !== undefined) settings.tls = { certFile, keyFile };
  const healthListen = single(flags, env, 'healthListen');
  if (healthListen !== undefined) {
    settings.health = parseHostPort(healthListen, 'health-listen');
    if (settings.health.port === settings.port && settings.health.port !== 0) {
      throw new ConfigError(`--health-listen "${healthListen}" uses the tunnel's port ${settings.port}: give it a port of its own (the manifests use 8082).`);
    }
  }
  if (tlsListen !== undefined) settings.tlsListen = tlsListen;
  const clientAuth = clientAuthSettings(settings, single(flags, env, 'clientTokenFile'));
  if (clientAuth !== undefined) settings.clientAuth = clientAuth;
  const agentListen = single(flags, env, 'agentListen');
  if (agentListen !== undefined) settings.agentListen = parseHostPort(agentListen, 'agent-listen');
  const webhook = webhookSettings(flags, env);
  if (webhook !== undefined) settings.webhook = webhook;
  return settings;
}

/** The webhook needs all of its flags, and agents that can arrive somewhere. */
function webhookSettings(flags: ManagerFlags, env: Env): WebhookSettings | undefined {
  const listen = single(flags, env, 'webhookListen');
  if (listen === undefined) return undefined;
  const certFile = single(flags, env, 'webhookCert');
  const keyFile = single(flags, env, 'webhookKey');
  const agentImage = single(flags, env, 'agentImage');
  const managerAddress = single(flags, env, 'agentManagerAddress');
  if (certFile === undefined || keyFile === undefined || agentImage === undefined || managerAddress === undefined) {
    throw new ConfigError('--webhook-listen needs --webhook-cert, --webhook-key, --agent-image and --agent-manager-address.');
  }
  if (single(flags, env, 'agentListen') === undefined) {
    throw new ConfigError('--webhook-listen injects agents, which arrive on --agent-listen: give it too (the manifests use 0.0.0.0:8083).');
  }
  return { ...parseHostPort(listen, 'webhook-listen'), certFile, keyFile, agentImage, managerAddress: parseHostPort(managerAddress, 'agent-manager-address') };
}
