// Running one container as a process in the pod's network namespace, and probing it. `ip netns exec` gives the
// process a mount namespace of its own (a slave of the node's, so nothing mounted there leaks out) with
// /etc/netns/<netns>/{resolv.conf,hosts} over /etc; a small sh prologue bind-mounts the service-account folder
// where in-cluster clients look for it (on a run folder of the pod's own, so the host gets no mount point), then
// execs the command, so the pid is the container's own.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, realpathSync, writeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SERVICE_ACCOUNT_DIR } from '../../k8s/in-cluster-access.js';
import { runCommand } from '../host-commands.js';
import { podEnvironment, processStartTime, type ProcessRecord } from '../processes.js';
import type { Container, Probe } from './types.js';


export interface ContainerLaunch {
  id: string;
  netns: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  /** Folder with token, ca.crt and namespace to mount at SERVICE_ACCOUNT_DIR, or null for none. */
  serviceAccountDir: string | null;
}

export interface RunningContainer {
  record: ProcessRecord;
  /** Settles with the exit code (128 + signal number for a signal, as a container runtime reports it). */
  exited: Promise<number>;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11, SIGABRT: 6, SIGPIPE: 13 };

// The folder the service-account path is in, links resolved (/var/run is a link to /run on Debian).
const RUN_DIR = ((dir: string): string => {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
})(dirname(dirname(dirname(SERVICE_ACCOUNT_DIR))));
const SECRETS_ENTRY = SERVICE_ACCOUNT_DIR.split('/').at(-3)!;

/**
 * Mounts the token folder "$1" where in-cluster clients look, then execs the rest of the command line, without
 * creating that path on the host: the pod gets a tmpfs over the run folder, and every entry of the host's
 * (reached through the working directory, which still names the covered folder) is bound back with its
 * submounts, except secrets. mount -n keeps utab untouched; --no-canonicalize keeps a relative source relative
 * to the covered folder.
 */
const MOUNT_PROLOGUE = [
  'set -e',
  'wd=$(pwd)',
  `cd ${RUN_DIR}`,
  `mount -n -t tmpfs -o mode=0755,size=4m kubetun-pod-run ${RUN_DIR}`,
  'for e in * .[!.]*; do',
  '  { [ -e "$e" ] || [ -L "$e" ]; } || continue',
  `  [ "$e" = ${SECRETS_ENTRY} ] && continue`,
  `  if [ -L "$e" ]; then cp -P "$e" "${RUN_DIR}/$e"; continue; fi`,
  `  if [ -d "$e" ]; then mkdir "${RUN_DIR}/$e"; else : > "${RUN_DIR}/$e"; fi`,
  `  mount -n --no-canonicalize --rbind "$e" "${RUN_DIR}/$e"`,
  'done',
  `mkdir -p ${SERVICE_ACCOUNT_DIR}`,
  `mount -n --bind "$1" ${SERVICE_ACCOUNT_DIR}`,
  `mount -n -o remount,bind,ro ${SERVICE_ACCOUNT_DIR}`,
  'cd "$wd"',
  'shift',
  'exec "$@"',
].join('\n');

export async function launchContainer(launch: ContainerLaunch): Promise<RunningContainer> {
  mkdirSync(dirname(launch.logFile), { recursive: true });
  const log = openSync(launch.logFile, 'a');
  const startedAt = new Date().toISOString();
  const inner = launch.serviceAccountDir === null ? launch.argv : ['sh', '-c', MOUNT_PROLOGUE, 'sh', launch.serviceAccountDir, ...launch.argv];
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
