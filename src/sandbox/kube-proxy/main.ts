// `node kube-proxy/main.js --kubeconfig FILE [--table NAME] [--node-address IP]... [--service-cidr CIDR]...
// [--log-level LEVEL]`: the sandbox's kube-proxy as a program, run as root inside the node's network namespace.
// SIGTERM/SIGINT delete its table and exit 0.

import { isIP } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadKubeConfig } from '../../k8s/kube-client.js';
import { parsePrefix } from '../../netstack/wire/ip-address.js';
import { createLogger, isLogLevel, type LogLevel } from '../../log/logger.js';
import { findBinary } from '../host-commands.js';
import { startKubeProxy } from './kube-proxy.js';
import { NFT_TABLE } from './ruleset.js';

function ipAddress(value: string, previous: string[]): string[] {
  if (isIP(value) === 0) throw new InvalidArgumentError(`"${value}" is not an IPv4 or IPv6 address.`);
  return [...previous, value];
}

function cidr(value: string, previous: string[]): string[] {
  try {
    parsePrefix(value);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not an IPv4 or IPv6 CIDR.`);
  }
  return [...previous, value];
}

function tableName(value: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(value)) {
    throw new InvalidArgumentError(`"${value}" is not an nftables table name: use letters, digits, '_' and '-', starting with a letter.`);
  }
  return value;
}

function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw new InvalidArgumentError('use debug, info, warn or error.');
  return value;
}

const program = new Command()
  .name('kube-proxy')
  .description("the sandbox's kube-proxy: routes Services to their endpoints with nftables (root, in the node's netns)")
  .requiredOption('--kubeconfig <file>', 'kubeconfig of a user that may list and watch services and endpoint slices')
  .addOption(new Option('--table <name>', 'nftables table (family inet) it owns').default(NFT_TABLE).argParser(tableName))
  .option('--node-address <ip>', "an address of the node where NodePorts listen (repeatable)", ipAddress, [])
  .option('--service-cidr <cidr>', "a service CIDR, whose addresses no Service holds are dropped (repeatable)", cidr, [])
  .addOption(new Option('--log-level <level>', 'debug, info, warn or error').default('info').argParser(logLevel));
program.parse(process.argv);
const opts = program.opts<{ kubeconfig: string; table: string; nodeAddress: string[]; serviceCidr: string[]; logLevel: LogLevel }>();

if (findBinary('nft') === null) program.error('kube-proxy: nft is not installed: apt-get install nftables', { exitCode: 2 });
function kubeConfigOrExit(): KubeConfig {
  try {
    return loadKubeConfig({ kubeconfig: opts.kubeconfig });
  } catch (error) {
    return program.error(`kube-proxy: ${(error as Error).message}`, { exitCode: 2 });
  }
}
const kubeConfig = kubeConfigOrExit();
const log = createLogger(opts.logLevel);
const proxy = startKubeProxy({ kubeConfig, table: opts.table, nodeAddresses: opts.nodeAddress, serviceCidrs: opts.serviceCidr, log });
const shutdown = (signal: string): void => {
  log.info('stopping', { signal });
  void proxy.stop().then(() => process.exit(0));
};
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));
