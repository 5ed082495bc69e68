// `kubetun traffic-manager`: runs the traffic manager in the cluster (or in the sandbox's manager pod).

import type { Command } from 'commander';
import { KubeConfigError } from '../k8s/kube-config-error.js';
import type { KubeAccess } from '../k8s/resilient-informer.js';
import { createLogger } from '../log/logger.js';
import { clientAuthenticator } from '../manager/client-auth-setup.js';
import { ClusterDiscovery, discoveryNeeded } from '../manager/discovery/cluster-discovery.js';
import { managerKubeAccess, managerNamespace } from '../manager/discovery/manager-kube.js';
import { POD_CIDR_STRATEGIES } from '../manager/discovery/pod-cidrs.js';
import { startHealthEndpoint, type HealthEndpoint } from '../manager/health-endpoint.js';
import { ConfigError, ENVIRONMENT, managerSettings, type ManagerFlags } from '../manager/manager-config.js';
import { CidrsFileError, followCidrsFile, readCidrsFile } from '../manager/cidrs-file.js';
import { startTrafficManager, type TrafficManager } from '../manager/traffic-manager.js';
import { startWebhookServer, type WebhookServer } from '../manager/webhook/webhook-server.js';
import { kubetunVersion } from '../version.js';

/** Bad flags exit with 2, like other command line usage errors. */
const USAGE_EXIT_CODE = 2;


function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

async function runTrafficManager(flags: ManagerFlags & { cidrsFile?: string }, command: Command): Promise<void> {
  let settings;
  let kubeConfig: KubeAccess | undefined;
  let authenticator;
  let discover = false;
  try {
    settings = managerSettings(flags, process.env);
    if (flags.cidrsFile !== undefined) {
      const fixed = { ...settings.discovery.fixed, podCidrs: true, serviceCidrs: true };
      settings = { ...settings, cluster: { ...settings.cluster, ...readCidrsFile(flags.cidrsFile) }, discovery: { ...settings.discovery, fixed } };
    }
    const kubeAuth = settings.clientAuth?.mode === 'kubernetes';
    discover = settings.discovery.kube !== undefined && discoveryNeeded(settings.discovery.fixed);
    if (settings.discovery.kube !== undefined && (discover || kubeAuth)) {
      kubeConfig = await managerKubeAccess(settings.discovery.kube);
    }
    const inPod = settings.discovery.kube?.inCluster ?? false;
    authenticator = clientAuthenticator(settings.clientAuth, kubeConfig, { name: process.env.POD_NAME, namespace: managerNamespace(process.env, inPod) });
  } catch (error) {
    if (error instanceof KubeConfigError) {
      command.error(`kubetun traffic-manager: ${error.message}`, { exitCode: USAGE_EXIT_CODE, code: 'BAD_CONFIG' });
    }
    if (!(error instanceof ConfigError || error instanceof CidrsFileError)) throw error;
    command.error(`kubetun traffic-manager: ${error.message}`, { exitCode: USAGE_EXIT_CODE, code: error.code });
  }
  const log = createLogger(settings.logLevel);
  const inCluster = settings.discovery.kube?.inCluster ?? false;
  const discovery =
    kubeConfig === undefined || !discover
      ? undefined
      : new ClusterDiscovery({
          kubeConfig,
          podCidrStrategy: settings.discovery.podCidrStrategy,
          fixed: settings.discovery.fixed,
          ...(process.env.POD_IP ? { ownPodIp: process.env.POD_IP } : {}),
          namespace: managerNamespace(process.env, inCluster),
          inCluster,
          log,
        });
  let starting: Promise<TrafficManager | undefined> = Promise.resolve(undefined);
  let health: HealthEndpoint | undefined;
  let webhook: WebhookServer | undefined;
  // Handlers go in before discovery and the listener, so a signal at any point stops cleanly.
  const stop = (signal: string): void => {
    log.info('stopping', { signal });
    discovery?.stop();
    starting
      .then((manager) => Promise.all([manager?.close(), health?.close(), webhook?.close()]))
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (settings.health !== undefined) {
    // Live (answering /healthz) from the start: discovery may take its whole sync timeout.
    try {
      health = await startHealthEndpoint({ ...settings.health, log });
    } catch (error) {
      log.error('cannot start the health endpoint', { error: (error as Error).message });
      process.exit(1);
    }
  }
  if (settings.webhook !== undefined) {
    // Pods wait for the webhook only while it answers: it needs nothing from discovery, so it starts now.
    try {
      webhook = await startWebhookServer(settings.webhook, log, kubetunVersion());
    } catch (error) {
      log.error('cannot start the agent injector webhook', { error: (error as Error).message });
      process.exit(1);
    }
  }
  let cluster = settings.cluster;
  if (discovery !== undefined) {
    log.info('discovering the cluster networking', { podCidrStrategy: settings.discovery.podCidrStrategy });
    try {
      cluster = { ...cluster, ...(await discovery.start()) };
    } catch (error) {
      log.error('cannot discover the cluster networking', { error: (error as Error).message });
      process.exit(1);
    }
  }
  const started = startTrafficManager({ ...settings, cluster, version: kubetunVersion(), log, ...(authenticator ? { authenticator } : {}) });
  starting = started;
  try {
    const manager = await started;
    discovery?.follow(manager.cluster);
    health?.markReady();
    if (flags.cidrsFile !== undefined) followCidrsFile(flags.cidrsFile, manager.cluster, log);
  } catch (error) {
    log.error('cannot start the traffic manager', { error: (error as Error).message });
    process.exit(1);
  }
}

export function registerTrafficManagerCommand(program: Command): void {
  const env = (key: keyof typeof ENVIRONMENT): string => `(env ${ENVIRONMENT[key]})`;
  program
    .command('traffic-manager')
    .description('run the traffic manager: sessions, cluster info, and the HTTP/2 tunnel (TCP, UDP, DNS)')
    .option('--listen <host:port>', `address to serve HTTP/2 on, default 127.0.0.1:8081; not loopback: TLS and client authentication are required ${env('listen')}`)
    .option('--health-listen <host:port>', `address to serve /healthz and /readyz on (nothing else), default none ${env('healthListen')}`)
    .option('--listen-tls <host:port>', `also serve TLS here (with --tls-cert/--tls-key), authenticating clients, for a manager exposed directly ${env('listenTls')}`)
    .option('--client-token-file <file>', `TLS clients must send this file's token (outside a cluster; in one, their Kubernetes credentials are checked) ${env('clientTokenFile')}`)
    .option('--pod-cidr <cidr>', `a pod CIDR, repeatable ${env('podCidr')}`, collect)
    .option('--service-cidr <cidr>', `a service CIDR, repeatable ${env('serviceCidr')}`, collect)
    .option('--dns-server <ip[:port]>', `the cluster DNS server ${env('dnsServer')}`)
    .option('--cluster-domain <domain>', `the cluster domain, default cluster.local ${env('clusterDomain')}`)
    .option('--pod-cidr-strategy <strategy>', `how to find the pod CIDRs: ${POD_CIDR_STRATEGIES.join(', ')}; default auto with a Kubernetes config, else environment ${env('podCidrStrategy')}`)
    .option('--kubeconfig <file>', `the Kubernetes config to discover the cluster with; default in-cluster when in a pod ${env('kubeconfig')}`)
    .option('--cidrs-file <path>', 'JSON {"podCidrs": […], "serviceCidrs": […]} overriding the CIDR flags, followed live')
    .option('--allow <cidr>', `an extra CIDR the manager may dial, repeatable ${env('allow')}`, collect)
    .option('--session-ttl <seconds>', `sessions end this long after the last keepalive, default 60 ${env('sessionTtl')}`)
    .option('--dial-timeout <seconds>', `TCP connect timeout, default 5 ${env('dialTimeout')}`)
    .option('--udp-idle-timeout <seconds>', `UDP flows close after this long idle, default 60 ${env('udpIdleTimeout')}`)
    .option('--tls-cert <file>', `serve TLS with this certificate (PEM) ${env('tlsCert')}`)
    .option('--tls-key <file>', `the key for --tls-cert (PEM) ${env('tlsKey')}`)
    .option('--agent-listen <host:port>', `where traffic agents arrive (h2c; agents only), default none ${env('agentListen')}`)
    .option('--webhook-listen <host:port>', `serve the agent-injecting admission webhook (TLS) here, default none ${env('webhookListen')}`)
    .option('--webhook-cert <file>', `the webhook's certificate (PEM) ${env('webhookCert')}`)
    .option('--webhook-key <file>', `the key for --webhook-cert (PEM) ${env('webhookKey')}`)
    .option('--agent-image <image>', `the image of injected agents (the manager's own) ${env('agentImage')}`)
    .option('--agent-manager-address <host:port>', `where injected agents find --agent-listen ${env('agentManagerAddress')}`)
    .option('--log-level <level>', `debug, info, warn or error, default info ${env('logLevel')}`)
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE))
    .action(runTrafficManager);
}
