// `kubetun traffic-manager`: runs the traffic manager in the cluster (or in the sandbox's manager pod).

import type { Command } from 'commander';
import { createLogger } from '../log/logger.js';
import { ConfigError, ENVIRONMENT, managerSettings, type ManagerFlags } from '../manager/manager-config.js';
import { CidrsFileError, followCidrsFile, readCidrsFile } from '../manager/cidrs-file.js';
import { startTrafficManager } from '../manager/traffic-manager.js';
import { kubetunVersion } from '../version.js';

/** Bad flags exit with 2, like other command line usage errors. */
const USAGE_EXIT_CODE = 2;


function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

async function runTrafficManager(flags: ManagerFlags & { cidrsFile?: string }, command: Command): Promise<void> {
  let settings;
  try {
    settings = managerSettings(flags, process.env);
    if (flags.cidrsFile !== undefined) settings = { ...settings, cluster: { ...settings.cluster, ...readCidrsFile(flags.cidrsFile) } };
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof CidrsFileError)) throw error;
    command.error(`kubetun traffic-manager: ${error.message}`, { exitCode: USAGE_EXIT_CODE, code: error.code });
  }
  const log = createLogger(settings.logLevel);
  const starting = startTrafficManager({ ...settings, version: kubetunVersion(), log });
  // Handlers go in before the listener is up, so a signal right after the "listening" log still stops cleanly.
  const stop = (signal: string): void => {
    log.info('stopping', { signal });
    starting.then((manager) => manager.close()).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  try {
    const manager = await starting;
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
    .option('--listen <host:port>', `address to serve HTTP/2 on, default [::]:8081 ${env('listen')}`)
    .option('--pod-cidr <cidr>', `a pod CIDR, repeatable ${env('podCidr')}`, collect)
    .option('--service-cidr <cidr>', `a service CIDR, repeatable ${env('serviceCidr')}`, collect)
    .option('--dns-server <ip[:port]>', `the cluster DNS server ${env('dnsServer')}`)
    .option('--cluster-domain <domain>', `the cluster domain, default cluster.local ${env('clusterDomain')}`)
    .option('--cidrs-file <path>', 'JSON {"podCidrs": […], "serviceCidrs": […]} overriding the CIDR flags, followed live')
    .option('--allow <cidr>', `an extra CIDR the manager may dial, repeatable ${env('allow')}`, collect)
    .option('--session-ttl <seconds>', `sessions end this long after the last keepalive, default 60 ${env('sessionTtl')}`)
    .option('--dial-timeout <seconds>', `TCP connect timeout, default 5 ${env('dialTimeout')}`)
    .option('--udp-idle-timeout <seconds>', `UDP flows close after this long idle, default 60 ${env('udpIdleTimeout')}`)
    .option('--tls-cert <file>', `serve TLS with this certificate (PEM) ${env('tlsCert')}`)
    .option('--tls-key <file>', `the key for --tls-cert (PEM) ${env('tlsKey')}`)
    .option('--log-level <level>', `debug, info, warn or error, default info ${env('logLevel')}`)
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE))
    .action(runTrafficManager);
}
