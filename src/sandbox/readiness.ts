// Readiness of the sandbox's servers: their port answers a TCP connection from the node, checked by one probe
// process in the node namespace for all of them at once.

import { fileURLToPath } from 'node:url';
import { runInNetns } from './host-commands.js';
import { formatTarget, type ProbeTarget } from './readiness-probe.js';
import type { ProcessRecord } from './processes.js';
import type { SandboxConfig, SandboxPod } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';
import { UPSTREAM_DNS_ID } from './workloads.js';

const PROBE_SCRIPT = fileURLToPath(new URL('./readiness-probe.js', import.meta.url));
// Room for the probe process to start and print after its own deadline.
const PROBE_SLACK_MS = 5_000;

export function readinessTarget(pod: SandboxPod): ProbeTarget {
  return { host: pod.ipv4, port: pod.readinessPort };
}

/** Where process `id` answers; with its pid when given, so that probing stops when it exits. */
export function processTarget(config: SandboxConfig, id: string, record?: ProcessRecord): ProbeTarget {
  let target: ProbeTarget;
  if (id === UPSTREAM_DNS_ID) target = { host: config.upstreamDns.addresses.ipv4, port: 53 };
  else {
    const pod = config.pods.find((p) => p.name === id);
    if (pod === undefined) throw new SandboxError('COMMAND_FAILED', `no pod named ${id} in sandbox ${config.name}`);
    target = readinessTarget(pod);
  }
  return record === undefined ? target : { ...target, pid: record.pid };
}

/** Waits until each target answers or `timeoutMs` passes; returns the ids of the targets that answered. */
export async function probeTargets(config: SandboxConfig, targets: ReadonlyMap<string, ProbeTarget>, timeoutMs: number): Promise<Set<string>> {
  if (targets.size === 0) return new Set();
  const texts = [...targets.values()].map(formatTarget);
  const { stdout } = await runInNetns(config.namespaces.node, process.execPath, [PROBE_SCRIPT, '--timeout-ms', String(timeoutMs), ...texts], {
    timeoutMs: timeoutMs + PROBE_SLACK_MS,
  });
  let ready: string[];
  try {
    ready = (JSON.parse(stdout) as { ready: string[] }).ready;
  } catch {
    throw new SandboxError('COMMAND_FAILED', `the readiness probe printed something unexpected: ${stdout.trim().slice(0, 200)}`);
  }
  const answered = new Set(ready);
  return new Set([...targets].filter(([, target]) => answered.has(formatTarget(target))).map(([id]) => id));
}
