// Running one container as a process in the pod's network namespace, and probing it. `ip netns exec` gives the
// process a mount namespace of its own (a slave of the node's, so nothing mounted there leaks out) with
// /etc/netns/<netns>/{resolv.conf,hosts} over /etc; a small sh prologue bind-mounts the pod's folders (the
// service-account token, secret volumes) read-only where the container looks for them (creating a missing mount
// point in a tmpfs of the pod's own, so the host gets none), then execs the command, so the pid is the container's.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { runCommand } from '../host-commands.js';
import { podEnvironment, processStartTime, type ProcessRecord } from '../processes.js';
import type { ContainerMount } from './secret-volumes.js';
import type { Container, Probe } from './types.js';


export interface ContainerLaunch {
  id: string;
  netns: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  /** The pod's folders to show read-only inside the container (the service-account token, secret volumes). */
  mounts: ContainerMount[];
}

export interface RunningContainer {
  record: ProcessRecord;
  /** Settles with the exit code (128 + signal number for a signal, as a container runtime reports it). */
  exited: Promise<number>;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11, SIGABRT: 6, SIGPIPE: 13 };

/**
 * Bind-mounts each folder "$1" read-only at "$2" (pairs up to "--"), then execs the rest of the command line. A
 * mount point missing on the node is not created there: its nearest existing folder gets a tmpfs over it in the
 * pod's mount namespace, with every entry of the host's (reached through the working directory, which still names
 * the covered folder) bound back with its submounts, except the one leading to the mount point, which is then made
 * on the tmpfs. mount -n keeps utab untouched; --no-canonicalize keeps a relative source relative to the covered
 * folder. The folders holding the shell and mount tools themselves cannot be covered so.
 */
const MOUNT_PROLOGUE = [
  'set -e',
  'wd=$(pwd)',
  'shadow() {',
  '  cd "$1"',
  '  mount -n -t tmpfs -o mode=0755,size=4m kubetun-pod-mounts "$1"',
  '  for e in * .[!.]*; do',
  '    { [ -e "$e" ] || [ -L "$e" ]; } || continue',
  '    [ "$e" = "$2" ] && continue',
  '    if [ -L "$e" ]; then cp -P "$e" "$1/$e"; continue; fi',
  '    if [ -d "$e" ]; then mkdir "$1/$e"; else : > "$1/$e"; fi',
  '    mount -n --no-canonicalize --rbind "$e" "$1/$e"',
  '  done',
  '  cd /',
  '}',
  'while [ "$1" != -- ]; do',
  '  src=$1; dst=$(realpath -m "$2"); shift 2',
  '  if [ ! -d "$dst" ]; then',
  '    up=$dst',
  '    while [ ! -e "$up" ]; do entry=${up##*/}; up=${up%/*}; up=${up:-/}; done',
  '    case $up in',
  '      / | /usr | /usr/bin* | /usr/sbin* | /usr/lib* ) echo "kubetun kubelet: cannot mount at $dst: $up does not have ${entry} and cannot be covered" >&2; exit 1 ;;',
  '    esac',
  '    [ -d "$up" ] || { echo "kubetun kubelet: cannot mount at $dst: $up is not a folder" >&2; exit 1; }',
  '    shadow "$up" "$entry"',
  '    mkdir -p "$dst"',
  '  fi',
  '  mount -n --bind "$src" "$dst"',
  '  mount -n -o remount,bind,ro "$dst"',
  'done',
  'shift',
  'cd "$wd"',
  'exec "$@"',
].join('\n');

export async function launchContainer(launch: ContainerLaunch): Promise<RunningContainer> {
  mkdirSync(dirname(launch.logFile), { recursive: true });
  const log = openSync(launch.logFile, 'a');
  const startedAt = new Date().toISOString();
  const pairs = launch.mounts.flatMap((m) => [m.source, m.target]);
  const inner = pairs.length === 0 ? launch.argv : ['sh', '-c', MOUNT_PROLOGUE, 'sh', ...pairs, '--', ...launch.argv];
  try {
    writeSync(log, `--- ${startedAt} kubetun kubelet starts ${launch.id}: ${launch.argv.join(' ')}\n`);
    const child = spawn('ip', ['netns', 'exec', launch.netns, ...inner], {
      cwd: launch.cwd,
      env: podEnvironment(launch.env),
      stdio: ['ignore', log, log],
      // Its own process group: a Ctrl-C meant for the kubelet does not reach the pods.
      detached: true,
    });
    const exited = new Promise<number>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (SIGNAL_NUMBERS[signal] ?? 0))));
      child.once('error', () => resolve(127));
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (error) => reject(new Error(`cannot start ${launch.id}: ${error.message}`)));
    });
    return {
      exited,
      record: {
        id: launch.id,
        netns: launch.netns,
        pid,
        startTime: processStartTime(pid) ?? 'exited',
        command: launch.argv,
        logFile: launch.logFile,
        startedAt,
        essential: false,
      },
    };
  } finally {
    closeSync(log);
  }
}

function resolvePort(port: number | string, container: Container): number | null {
  if (typeof port === 'number') return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort ?? null;
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function httpProbe(probe: NonNullable<Probe['httpGet']>, host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const headers = Object.fromEntries((probe.httpHeaders ?? []).map((h) => [h.name, h.value]));
    const https = probe.scheme === 'HTTPS';
    const request = https ? httpsRequest : httpRequest;
    const req = request(
      { host: probe.host ?? host, port, path: probe.path ?? '/', method: 'GET', headers, timeout: timeoutMs, ...(https ? { rejectUnauthorized: false } : {}) },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 400);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Runs one probe against a container whose process is `pid`, at the pod's address; true when it passes. */
export async function runProbe(probe: Probe, container: Container, podIP: string, pid: number): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.tcpSocket !== undefined) {
    const port = resolvePort(probe.tcpSocket.port, container);
    return port !== null && tcpProbe(probe.tcpSocket.host ?? podIP, port, timeoutMs);
  }
  if (probe.httpGet !== undefined) {
    const port = resolvePort(probe.httpGet.port, container);
    return port !== null && httpProbe(probe.httpGet, podIP, port, timeoutMs);
  }
  if (probe.exec?.command !== undefined && probe.exec.command.length > 0) {
    // Inside the container's own network and mount namespaces, as an exec probe runs in the container.
    const result = await runCommand('nsenter', ['-t', String(pid), '-n', '-m', '--', ...probe.exec.command], {
      allowFailure: true,
      timeoutMs,
    }).catch(() => ({ code: -1 }));
    return result.code === 0;
  }
  return true;
}
