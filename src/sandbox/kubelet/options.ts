// The kubelet's command line: flags to KubeletOptions, with a message naming the flag that is wrong.

import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isLogLevel, type LogLevel } from '../../log/logger.js';
import { parsePrefix } from '../../netstack/wire/ip-address.js';
import type { KubeletOptions } from './kubelet.js';

export const USAGE = `usage: kubelet --kubeconfig FILE --node-name NAME --node-ip IP --pod-cidr CIDR [--pod-cidr CIDR6]
               --bridge NAME --netns-prefix P --state-dir DIR [--port 10250] [--cluster-dns IP]
               [--cluster-domain cluster.local] [--kubernetes-service-host IP --kubernetes-service-port N]
               [--image-map FILE.json] [--resolv-conf /etc/resolv.conf] [--log-level debug|info|warn|error]`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function port(text: string, flag: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < 1 || n > 65535) throw new UsageError(`${flag} must be a port number from 1 to 65535, not "${text}"`);
  return n;
}

/** The options the command line gives, or a UsageError that says which flag is wrong. */
export function parseKubeletArgs(argv: string[]): KubeletOptions & { logLevel: LogLevel } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        'node-name': { type: 'string' },
        'node-ip': { type: 'string' },
        port: { type: 'string', default: '10250' },
        'pod-cidr': { type: 'string', multiple: true },
        bridge: { type: 'string' },
        'netns-prefix': { type: 'string' },
        'state-dir': { type: 'string' },
        'cluster-dns': { type: 'string' },
        'cluster-domain': { type: 'string', default: 'cluster.local' },
        'kubernetes-service-host': { type: 'string' },
        'kubernetes-service-port': { type: 'string' },
        'image-map': { type: 'string' },
        'resolv-conf': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const required = ['kubeconfig', 'node-name', 'node-ip', 'pod-cidr', 'bridge', 'netns-prefix', 'state-dir'] as const;
  const missing = required.filter((flag) => values[flag] === undefined);
  if (missing.length > 0) throw new UsageError(`missing ${missing.map((f) => `--${f}`).join(', ')}`);
  const podCidrs = values['pod-cidr']!;
  for (const cidr of podCidrs) {
    try {
      parsePrefix(cidr);
    } catch (error) {
      throw new UsageError(`--pod-cidr ${cidr}: ${(error as Error).message}`);
    }
  }
  const v4 = podCidrs.filter((c) => !c.includes(':')).length;
  if (v4 !== 1 || podCidrs.length - v4 > 1) throw new UsageError('give one IPv4 --pod-cidr and at most one IPv6 --pod-cidr');
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(values['netns-prefix']!)) {
    throw new UsageError(`--netns-prefix "${values['netns-prefix']}" may hold only letters, digits, "_", "." and "-"`);
  }
  const logLevel = values['log-level']!;
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn or error, not "${logLevel}"`);
  const resolvConf = values['resolv-conf'];
  if (resolvConf !== undefined && !existsSync(resolvConf)) throw new UsageError(`--resolv-conf ${resolvConf} does not exist: give the node's resolv.conf`);
  const serviceHost = values['kubernetes-service-host'];
  const servicePort = values['kubernetes-service-port'];
  if ((serviceHost === undefined) !== (servicePort === undefined)) {
    throw new UsageError('give --kubernetes-service-host and --kubernetes-service-port together');
  }
  return {
    kubeconfig: values.kubeconfig!,
    nodeName: values['node-name']!,
    nodeIP: values['node-ip']!,
    port: port(values.port!, '--port'),
    podCidrs,
    bridge: values.bridge!,
    netnsPrefix: values['netns-prefix']!,
    stateDir: values['state-dir']!,
    clusterDns: values['cluster-dns'],
    clusterDomain: values['cluster-domain'],
    kubernetesServiceHost: serviceHost,
    kubernetesServicePort: servicePort === undefined ? undefined : port(servicePort, '--kubernetes-service-port'),
    imageMap: values['image-map'],
    resolvConf,
    logLevel,
  };
}

