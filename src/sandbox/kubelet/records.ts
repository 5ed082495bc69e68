// What the kubelet leaves on disk for each pod, so that a kubelet restarted after a crash, or `sandbox down`,
// can stop the pod's processes (by pid and start time) and delete its namespace and /etc/netns folder.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopProcess, type ProcessRecord } from '../processes.js';
import { removePodNetwork } from './pod-network.js';

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  /** The processes started for the pod that may still run (each container's latest). */
  processes: ProcessRecord[];
}

export function podsDir(stateDir: string): string {
  return join(stateDir, 'pods');
}

export function podDir(stateDir: string, uid: string): string {
  return join(podsDir(stateDir), uid);
}

export function writePodRecord(stateDir: string, record: PodRecord): void {
  const dir = podDir(stateDir, record.uid);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'record.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export function readPodRecords(stateDir: string): PodRecord[] {
  const dir = podsDir(stateDir);
  if (!existsSync(dir)) return [];
  const records: PodRecord[] = [];
  for (const uid of readdirSync(dir)) {
    const file = join(dir, uid, 'record.json');
    try {
      records.push(JSON.parse(readFileSync(file, 'utf8')) as PodRecord);
    } catch {
      // no record (the pod never got a network) or a torn write: nothing to clean
    }
  }
  return records;
}

/** Stops the recorded processes of one pod and deletes its namespace and /etc/netns folder, then its record. */
export async function cleanupPodRecord(stateDir: string, record: PodRecord, graceMs = 2_000): Promise<void> {
  await Promise.all(record.processes.map((p) => stopProcess(p, graceMs)));
  // The veth pair goes with the namespace; the node side is not looked for here, since this may run outside the
  // node's namespace (where an interface of that name would be someone else's).
  await removePodNetwork(record.netns, null);
  rmSync(join(podDir(stateDir, record.uid), 'record.json'), { force: true });
}

/**
 * After a crash (`sandbox down`, or a kubelet starting again): kills the recorded pod processes by pid and start
 * time, deletes the recorded namespaces, veths and /etc/netns folders. Returns the pods cleaned.
 */
export async function cleanupKubelet(stateDir: string): Promise<PodRecord[]> {
  const records = readPodRecords(stateDir);
  for (const record of records) await cleanupPodRecord(stateDir, record);
  return records;
}
