// `node cluster-dns/main.js [--kubeconfig FILE] [--listen IP]... [--port 53] [--cluster-domain cluster.local]
// [--upstream IP[:PORT]] [--log-level LEVEL]`: the sandbox's cluster DNS as a program. In a pod it needs no
// options: the service account's in-cluster config, every address of the pod, the resolver of its resolv.conf.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Command, InvalidArgumentError, Option } from 'commander';
import { inClusterAccess } from '../../k8s/in-cluster-access.js';
import { loadKubeConfig } from '../../k8s/kube-client.js';
import type { KubeAccess } from '../../k8s/resilient-informer.js';
import { createLogger, isLogLevel, type LogLevel } from '../../log/logger.js';
import { startClusterDns } from './cluster-dns.js';
import type { Upstream } from './dns-server.js';
import { parseUpstream, upstreamFromResolvConf } from './options.js';

function address(value: string, previous: string[] | undefined): string[] {
  if (isIP(value) === 0) throw new InvalidArgumentError(`"${value}" is not an IPv4 or IPv6 address.`);
  return [...(previous ?? []), value];
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('use a port number from 1 to 65535.');
  return n;
}

function domain(value: string): string {
  const name = value.replace(/\.$/, '').toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(name)) {
    throw new InvalidArgumentError(`"${value}" is not a domain name.`);
  }
  return name;
}

function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw new InvalidArgumentError('use debug, info, warn or error.');
  return value;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('cluster-dns')
    .description("the sandbox's cluster DNS: answers for the cluster domain from the API, forwards the rest")
    .option('--kubeconfig <file>', 'kubeconfig to watch the API with (default: the in-cluster service account)')
    .option('--listen <ip>', 'an address to listen on (repeatable; default 0.0.0.0 and ::)', address)
    .addOption(new Option('--port <port>', 'UDP and TCP port').default(53).argParser(port))
    .addOption(new Option('--cluster-domain <domain>', 'the cluster domain').default('cluster.local').argParser(domain))
    .option('--upstream <ip[:port]>', 'where other names go (default: the nameserver of /etc/resolv.conf)', parseUpstream)
    .addOption(new Option('--log-level <level>', 'debug, info, warn or error').default('info').argParser(logLevel));
  program.parse(process.argv);
  const opts = program.opts<{ kubeconfig?: string; listen?: string[]; port: number; clusterDomain: string; upstream?: Upstream; logLevel: LogLevel }>();
  const fail = (error: unknown): never => program.error(`cluster-dns: ${(error as Error).message}`, { exitCode: 2 });

  let kubeConfig: KubeAccess;
  let upstream: Upstream;
  try {
    kubeConfig = opts.kubeconfig === undefined ? inClusterAccess() : loadKubeConfig({ kubeconfig: opts.kubeconfig });
    upstream = opts.upstream ?? upstreamFromResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch (error) {
    return fail(error);
  }
  const log = createLogger(opts.logLevel);
  const dns = await startClusterDns({ kubeConfig, listen: opts.listen, port: opts.port, clusterDomain: opts.clusterDomain, upstream, log }).catch(fail);
  const shutdown = (signal: string): void => {
    log.info('stopping', { signal });
    void dns.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

await main();
