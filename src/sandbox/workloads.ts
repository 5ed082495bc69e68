// What runs in the sandbox: one process per pod (a real server) and the upstream resolver in the node namespace,
// described as plain specs; processes.ts starts them.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SandboxConfig, SandboxPod } from './sandbox-config.js';

export interface ProcessSpec {
  /** The pod's name, or `upstream-dns`. */
  id: string;
  netns: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  /** Whether `sandbox up` fails when this process does not become ready (the manager is allowed to fail). */
  essential: boolean;
}

export const UPSTREAM_DNS_ID = 'upstream-dns';

/** Paths of the files the sandbox's processes run or read. */
export interface WorkloadPaths {
  node: string;
  echoServer: string;
  /** The traffic manager's command line, or null to run no manager (its pod then stays empty). */
  managerCommand: readonly string[] | null;
}

export function defaultWorkloadPaths(): WorkloadPaths {
  return {
    node: process.execPath,
    echoServer: fileURLToPath(new URL('./workloads/echo-server.js', import.meta.url)),
    managerCommand: null,
  };
}

/** The file the sandbox's manager takes its pod and service CIDRs from, live (`--cidrs-file`). */
export function clusterCidrsFile(config: SandboxConfig): string {
  return `${config.stateDir}/cluster-cidrs.json`;
}

/** Changes the cluster's CIDRs as the manager sees them, as a cluster whose nodes or services change would. */
export function writeClusterCidrs(config: SandboxConfig, cidrs: { podCidrs: readonly string[]; serviceCidrs: readonly string[] }): void {
  writeFileSync(clusterCidrsFile(config), JSON.stringify(cidrs, null, 2) + '\n');
}

/** `node <kubetun>/dist/src/cli/main.js traffic-manager …` with the sandbox's cluster facts as flags. */
export function defaultManagerCommand(config: SandboxConfig, node = process.execPath): string[] {
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  return [
    node,
    main,
    'traffic-manager',
    '--listen',
    `[::]:${config.manager.port}`,
    ...config.podCidrs.flatMap((c) => ['--pod-cidr', c]),
    ...config.serviceCidrs.flatMap((c) => ['--service-cidr', c]),
    '--dns-server',
    config.clusterDns.ipv4,
    '--cluster-domain',
    config.clusterDomain,
    '--cidrs-file',
    clusterCidrsFile(config),
  ];
}

export function logFileOf(config: SandboxConfig, id: string): string {
  return `${config.stateDir}/logs/${id}.log`;
}

export function podDirOf(config: SandboxConfig, pod: SandboxPod): string {
  return `${config.stateDir}/pods/${pod.name}`;
}

export function clusterDnsConfigPath(config: SandboxConfig): string {
  return `${config.stateDir}/cluster-dns.conf`;
}

export function upstreamDnsConfigPath(config: SandboxConfig): string {
  return `${config.stateDir}/upstream-dns.conf`;
}

/** The command of a pod's process, or null when the pod runs nothing (no manager command). */
function podCommand(config: SandboxConfig, pod: SandboxPod, paths: WorkloadPaths): string[] | null {
  switch (pod.kind) {
    case 'cluster-dns':
      return ['dnsmasq', '--keep-in-foreground', `--conf-file=${clusterDnsConfigPath(config)}`];
    case 'echo':
      return [paths.node, paths.echoServer, '--pod', pod.name, '--namespace', pod.namespace, '--port', String(pod.readinessPort)];
    case 'redis':
      return [
        'redis-server',
        '--port',
        String(pod.readinessPort),
        '--bind',
        pod.ipv4,
        pod.ipv6,
        '127.0.0.1',
        '::1',
        '--protected-mode',
        'no',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        podDirOf(config, pod),
      ];
    case 'iperf':
      return ['iperf3', '--server', '--port', String(pod.readinessPort), '--forceflush'];
    case 'traffic-manager':
      return paths.managerCommand === null ? null : [...paths.managerCommand];
  }
}

export function podProcessSpec(config: SandboxConfig, pod: SandboxPod, paths: WorkloadPaths): ProcessSpec | null {
  const command = podCommand(config, pod, paths);
  if (command === null) return null;
  return {
    id: pod.name,
    netns: pod.netns,
    command: command[0]!,
    args: command.slice(1),
    // What the downward API and the kubelet give a pod's containers.
    env: {
      HOSTNAME: pod.name,
      POD_NAME: pod.name,
      POD_NAMESPACE: pod.namespace,
      POD_IP: pod.ipv4,
      POD_IPS: `${pod.ipv4},${pod.ipv6}`,
    },
    cwd: podDirOf(config, pod),
    logFile: logFileOf(config, pod.name),
    essential: pod.kind !== 'traffic-manager',
  };
}

export function upstreamDnsProcessSpec(config: SandboxConfig): ProcessSpec {
  return {
    id: UPSTREAM_DNS_ID,
    netns: config.namespaces.node,
    command: 'dnsmasq',
    args: ['--keep-in-foreground', `--conf-file=${upstreamDnsConfigPath(config)}`],
    env: {},
    cwd: config.stateDir,
    logFile: logFileOf(config, UPSTREAM_DNS_ID),
    essential: true,
  };
}
