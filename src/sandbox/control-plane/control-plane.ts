// Starting and stopping a control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) as
// processes inside a network namespace, with its certificates, data, logs and kubeconfigs under a state
// folder. A start that fails stops whatever it had started; a stop kills only the recorded processes, by pid
// and start time, never by name.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../host-commands.js';
import { isAlive, startProcess, stopProcess, type ProcessRecord } from '../processes.js';
import { requestApiInNetns, type ApiCredentials } from './api-request.js';
import { kubernetesBinDir, requireBinaries } from './binaries.js';
import {
  apiserverCommand,
  controllerManagerCommand,
  etcdCommand,
  schedulerCommand,
  serverUrl,
  type ComponentCommand,
  type ControlPlaneLayout,
} from './command-lines.js';
import { ControlPlaneError } from './control-plane-errors.js';
import { writeKubeconfig } from './kubeconfig.js';
import { ensurePki } from './pki.js';

export const DEFAULT_SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
export const DEFAULT_SECURE_PORT = 6443;
const DEFAULT_READY_TIMEOUT_MS = 90_000;
const RECORD_FILE = 'control-plane.json';
const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;
const LOG_TAIL_LINES = 15;

export interface ControlPlaneOptions {
  /** The network namespace to run in; it must exist. Its loopback is brought up. */
  netns: string;
  /**
   * The address the API server listens on and advertises, one of the namespace's own. A loopback address works
   * for clients in the namespace, but the API server cannot publish it as the `kubernetes` Service's endpoint.
   */
  address: string;
  /** Certificates, etcd data, logs, kubeconfigs and the record of the processes. */
  stateDir: string;
  securePort?: number;
  serviceClusterIpRange?: string;
  /** Where kube-apiserver and the others are; by default the build script's cache. */
  binDir?: string;
  /** How long to wait for the API server's /readyz and the controller-manager's first work. */
  readyTimeoutMs?: number;
}

export interface ControlPlane {
  netns: string;
  address: string;
  /** `https://address:port`. */
  server: string;
  serviceClusterIpRange: string;
  stateDir: string;
  /** An admin kubeconfig (system:masters), certificates embedded. */
  kubeconfig: string;
  /** The same admin identity as files, for requestApiInNetns. */
  admin: ApiCredentials;
  /** In start order: etcd, kube-apiserver, kube-controller-manager, kube-scheduler. */
  processes: ProcessRecord[];
}

/** Where the control plane started from `stateDir` keeps its admin kubeconfig. */
export function adminKubeconfigPath(stateDir: string): string {
  return join(stateDir, 'admin.kubeconfig');
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopAll(records: readonly ProcessRecord[]): Promise<void> {
  for (const record of [...records].reverse()) await stopProcess(record);
}

function notReady(what: string, record: ProcessRecord): ControlPlaneError {
  const state = isAlive(record) ? 'is running but not ready' : 'exited';
  return new ControlPlaneError(
    'NOT_READY',
    `${what}: ${record.id} ${state}; its log is ${record.logFile}, which ends with:\n${tail(record.logFile)}`,
  );
}

/** Starts the control plane and returns once the API server is ready and the controllers work. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const binaries = requireBinaries(options.binDir ?? kubernetesBinDir());
  const serviceClusterIpRange = options.serviceClusterIpRange ?? DEFAULT_SERVICE_CLUSTER_IP_RANGE;
  const securePort = options.securePort ?? DEFAULT_SECURE_PORT;
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const { netns, address, stateDir } = options;
  const server = serverUrl(address, securePort);
  const deadline = Date.now() + timeoutMs;

  const running = readControlPlane(stateDir);
  if (running !== null && running.processes.some(isAlive)) {
    throw new ControlPlaneError('ALREADY_RUNNING', `a control plane already runs from ${stateDir} (${running.server}): stop it first`);
  }
  // etcd and the components' health ports listen on 127.0.0.1, which needs lo up (a new namespace has it down).
  await runCommand('ip', ['-n', netns, 'link', 'set', 'lo', 'up']).catch((error: unknown) => {
    throw new ControlPlaneError('START_FAILED', `cannot use network namespace ${netns} (create it first): ${(error as Error).message}`);
  });
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const pki = await ensurePki(join(stateDir, 'pki'), address, serviceClusterIpRange);
  const layout: ControlPlaneLayout = {
    address,
    securePort,
    serviceClusterIpRange,
    etcdDataDir: join(stateDir, 'etcd'),
    etcdClientPort: ETCD_CLIENT_PORT,
    etcdPeerPort: ETCD_PEER_PORT,
    controllerManagerKubeconfig: join(stateDir, 'controller-manager.kubeconfig'),
    schedulerKubeconfig: join(stateDir, 'scheduler.kubeconfig'),
    servingCertDir: join(stateDir, 'serving-certs'),
  };
  const kubeconfig = adminKubeconfigPath(stateDir);
  writeKubeconfig(kubeconfig, 'kubetun-sandbox', server, pki.ca.certFile, pki.admin);
  writeKubeconfig(layout.controllerManagerKubeconfig, 'kube-controller-manager', server, pki.ca.certFile, pki.controllerManager);
  writeKubeconfig(layout.schedulerKubeconfig, 'kube-scheduler', server, pki.ca.certFile, pki.scheduler);
  const admin: ApiCredentials = { server, caFile: pki.ca.certFile, ...pki.admin };

  const processes: ProcessRecord[] = [];
  const start = async (component: ComponentCommand): Promise<ProcessRecord> => {
    const record = await startProcess({
      id: component.id,
      netns,
      command: component.command,
      args: component.args,
      env: {},
      cwd: stateDir,
      logFile: join(stateDir, 'logs', `${component.id}.log`),
      essential: true,
    }).catch((error: unknown) => {
      throw new ControlPlaneError('START_FAILED', `cannot start ${component.id} in namespace ${netns}: ${(error as Error).message}`);
    });
    processes.push(record);
    return record;
  };
  const waitFor = async (path: string, watched: ProcessRecord): Promise<boolean> => {
    const [answer] = await requestApiInNetns(netns, {
      credentials: admin,
      requests: [{ method: 'GET', path }],
      untilStatus: 200,
      timeoutMs: Math.max(1_000, deadline - Date.now()),
      watchPid: watched.pid,
    });
    return answer?.status === 200;
  };

  try {
    await start(etcdCommand(binaries, layout));
    const apiserver = await start(apiserverCommand(binaries, layout, pki));
    if (!(await waitFor('/readyz', apiserver))) {
      const etcd = processes[0]!;
      throw notReady(`the API server at ${server} did not become ready`, isAlive(etcd) ? apiserver : etcd);
    }
    const controllerManager = await start(controllerManagerCommand(binaries, layout, pki));
    const scheduler = await start(schedulerCommand(binaries, layout));
    // The default ServiceAccount appears once the controller-manager runs its controllers; pods need it.
    if (!(await waitFor('/api/v1/namespaces/default/serviceaccounts/default', controllerManager))) {
      throw notReady('the controller-manager did not create the default ServiceAccount', controllerManager);
    }
    if (!isAlive(scheduler)) throw notReady('the scheduler did not start', scheduler);
  } catch (error) {
    await stopAll(processes);
    throw error;
  }

  const plane: ControlPlane = { netns, address, server, serviceClusterIpRange, stateDir, kubeconfig, admin, processes };
  writeFileSync(join(stateDir, RECORD_FILE), `${JSON.stringify(plane, null, 2)}\n`);
  return plane;
}

/** Stops the control plane's processes (the scheduler first, etcd last). Its state folder stays. */
export async function stopControlPlane(plane: Pick<ControlPlane, 'processes' | 'stateDir'>): Promise<void> {
  await stopAll(plane.processes);
  rmSync(join(plane.stateDir, RECORD_FILE), { force: true });
}

/** The control plane started with this state folder and not stopped yet, as recorded; or null. */
export function readControlPlane(stateDir: string): ControlPlane | null {
  const file = join(stateDir, RECORD_FILE);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as ControlPlane;
}
