// Pod processes: started detached in their network namespace with output to a log file, identified by pid and
// kernel start time (so a reused pid is never mistaken for ours), stopped with SIGTERM then SIGKILL.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand } from './host-commands.js';
import { SandboxError } from './sandbox-errors.js';
import type { ProcessSpec } from './workloads.js';

export interface ProcessRecord {
  id: string;
  netns: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid, names the process for good. */
  startTime: string;
  command: string[];
  logFile: string;
  startedAt: string;
  essential: boolean;
}

const TERM_GRACE_MS = 3_000;
const KILL_WAIT_MS = 2_000;
const POLL_MS = 25;

interface ProcStat {
  state: string;
  startTime: string;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return null;
  return { state, startTime };
}

/** Whether the process recorded is still the same, and not a zombie. */
export function isAlive(record: Pick<ProcessRecord, 'pid' | 'startTime'>): boolean {
  const stat = readStat(record.pid);
  return stat !== null && stat.startTime === record.startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** The kernel start time of `pid` (what a ProcessRecord holds), or null when there is no such process. */
export function processStartTime(pid: number): string | null {
  return readStat(pid)?.startTime ?? null;
}

/**
 * A pod's environment: what its spec says, on top of PATH and the locale. Like a container, it does not inherit
 * the environment of whoever ran `sandbox up`, except KUBETUN_* settings (a log level for the manager, say).
 */
export function podEnvironment(env: Readonly<Record<string, string>>, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = { PATH: from.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const [key, value] of Object.entries(from)) {
    if (value !== undefined && (key === 'LANG' || key === 'TZ' || key.startsWith('KUBETUN_'))) out[key] = value;
  }
  return { ...out, ...env };
}

/** Starts `spec` detached (its own session, output appended to its log file) and records it. */
export async function startProcess(spec: ProcessSpec): Promise<ProcessRecord> {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  mkdirSync(spec.cwd, { recursive: true });
  const log = openSync(spec.logFile, 'a');
  const command = [spec.command, ...spec.args];
  const startedAt = new Date().toISOString();
  try {
    writeSync(log, `--- ${startedAt} kubetun sandbox starts in ${spec.netns}: ${command.join(' ')}\n`);
    // Both exec the command, so the pid is the command's own. `ip netns exec` gives the process a mount
    // namespace of its own (for /etc/netns); nsenter keeps the host's, where network namespaces the process
    // creates (a kubelet's pods) are visible to everyone.
    const wrapper = spec.hostMounts === true ? ['nsenter', `--net=/run/netns/${spec.netns}`, '--'] : ['ip', 'netns', 'exec', spec.netns];
    const child = spawn(wrapper[0]!, [...wrapper.slice(1), ...command], {
      cwd: spec.cwd,
      env: podEnvironment(spec.env),
      stdio: ['ignore', log, log],
      detached: true,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (error) => reject(new SandboxError('COMMAND_FAILED', `cannot start ${spec.id}: ${error.message}`)));
    });
    child.unref();
    const stat = readStat(pid);
    return {
      id: spec.id,
      netns: spec.netns,
      pid,
      // A process that died already gets an impossible start time: it is dead to isAlive() from now on.
      startTime: stat?.startTime ?? 'exited',
      command,
      logFile: spec.logFile,
      startedAt,
      essential: spec.essential,
    };
  } finally {
    closeSync(log);
  }
}

async function waitForExit(record: ProcessRecord, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(record)) return true;
    await sleep(POLL_MS);
  }
  return !isAlive(record);
}

/** Stops the recorded process if it still is the one recorded (SIGKILL after `graceMs`); returns whether it had to be stopped. */
export async function stopProcess(record: ProcessRecord, graceMs = TERM_GRACE_MS): Promise<boolean> {
  if (!isAlive(record)) return false;
  try {
    process.kill(record.pid, 'SIGTERM');
  } catch {
    return false;
  }
  if (await waitForExit(record, graceMs)) return true;
  try {
    process.kill(record.pid, 'SIGKILL');
  } catch {
    return true;
  }
  await waitForExit(record, KILL_WAIT_MS);
  return true;
}

/** The pids of processes running in a network namespace (`ip netns pids`), whoever started them. */
export async function pidsInNetns(netns: string): Promise<number[]> {
  const result = await runCommand('ip', ['netns', 'pids', netns], { allowFailure: true });
  if (result.code !== 0) return [];
  return result.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** A short description of a process for messages: `1234 (redis-server)`. */
export function describePid(pid: number): string {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return `${pid} (${comm})`;
  } catch {
    return String(pid);
  }
}
