// A readiness probe run inside the node namespace (`ip netns exec <node> node readiness-probe.js …`): connects
// to every `host:port` target until each has answered once or the time is up, then prints
// {"ready": [...], "notReady": [...]} on stdout. The kubelet's tcpSocket probe, for many pods in one process.
// A target `host:port/pid` is given up as soon as that process has exited (the pid namespace is the host's).

import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

const CONNECT_TIMEOUT_MS = 1_000;
const RETRY_MS = 50;

export interface ProbeTarget {
  host: string;
  port: number;
  /** The process that should answer: the probe stops waiting when it exits. */
  pid?: number;
}

export function parseTarget(text: string): ProbeTarget {
  const match = /^\[?([^\]]+?)\]?:(\d+)(?:\/(\d+))?$/.exec(text);
  if (match === null) throw new Error(`"${text}" is not host:port, [host]:port or either with /pid`);
  const target: ProbeTarget = { host: match[1]!, port: Number(match[2]) };
  if (match[3] !== undefined) target.pid = Number(match[3]);
  return target;
}

export function formatTarget(target: ProbeTarget): string {
  const address = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return target.pid === undefined ? address : `${address}/${target.pid}`;
}

function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

function answers(target: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port, timeout: timeoutMs });
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => finish(true));
    socket.once('timeout', () => finish(false));
    socket.once('error', () => finish(false));
  });
}

async function probeUntilReady(target: ProbeTarget, deadline: number): Promise<boolean> {
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    if (await answers(target, Math.min(CONNECT_TIMEOUT_MS, left))) return true;
    if (Date.now() + RETRY_MS >= deadline || (target.pid !== undefined && exited(target.pid))) return false;
    await sleep(RETRY_MS);
  }
}

async function main(argv: string[]): Promise<void> {
  let timeoutMs = 10_000;
  const targets: ProbeTarget[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout-ms') timeoutMs = Number(argv[++i]);
    else targets.push(parseTarget(argv[i]!));
  }
  const deadline = Date.now() + timeoutMs;
  const results = await Promise.all(targets.map((t) => probeUntilReady(t, deadline)));
  const ready = targets.filter((_, i) => results[i]).map(formatTarget);
  const notReady = targets.filter((_, i) => !results[i]).map(formatTarget);
  process.stdout.write(`${JSON.stringify({ ready, notReady })}\n`);
}

// Run as a program, not when imported for its helpers.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
