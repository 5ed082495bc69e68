// One pod's life on the node: network, service-account token, secret volumes, containers (restarted per
// restartPolicy with back-off), probes, status reports, and termination (on deletion, or when the kubelet stops).

import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log/logger.js';
import { SERVICE_ACCOUNT_DIR } from '../../k8s/in-cluster-access.js';
import { KubeApiError } from '../../k8s/resilient-informer.js';
import { stopProcess } from '../processes.js';
import { launchContainer, runProbe, type RunningContainer } from './containers.js';
import { resolveCommand, type ImageTable } from './images.js';
import type { Ipam } from './ipam.js';
import type { KubeApi } from './kube-api.js';
import { fetchEnvSources } from './env-sources.js';
import { containerEnvironment, expandCommand, nodeVethName, podHosts, podNetnsName, podResolvConf, type DnsSettings } from './pod-env.js';
import { PodEventRecorder } from './pod-events.js';
import { createPodNetwork, removePodNetwork } from './pod-network.js';
import { podDir, writePodRecord, type PodRecord } from './records.js';
import { PodDialer } from './pod-dialer.js';
import { runAsPrefix } from './run-as.js';
import { secretVolumeFiles, secretVolumeMounts, VolumeSetupError, writeVolume, type ContainerMount } from './secret-volumes.js';
import type { Container, Pod, Probe } from './types.js';

export interface WorkerContext {
  api: KubeApi;
  ipam: Ipam;
  log: Logger;
  nodeName: string;
  nodeIP: string;
  bridge: string;
  gateways: string[];
  netnsPrefix: string;
  stateDir: string;
  dns: DnsSettings;
  kubernetesServiceHost?: string;
  kubernetesServicePort?: number;
  images: ImageTable;
  imageMapFile?: string;
  /** The API server's CA (PEM), given to pods as ca.crt. */
  caPem: string;
}

const BACKOFF_INITIAL_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
// A container that ran this long without trouble starts its back-off afresh, as the kubelet's does.
const BACKOFF_RESET_MS = 10 * 60_000;
const MAX_GRACE_S = 10;
const TOKEN_SECONDS = 3_600;
const STATUS_DEBOUNCE_MS = 100;
const SETUP_RETRY_MS = 5_000;
// A container waiting for a ConfigMap or Secret (CreateContainerConfigError) looks for it again this often.
const CONFIG_RETRY_MS = 3_000;

type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; reason: string; startedAt: string; finishedAt: string; containerID?: string } };

interface ContainerRun {
  spec: Container;
  init: boolean;
  state: ContainerState;
  lastState?: ContainerState;
  restartCount: number;
  ready: boolean;
  running?: RunningContainer;
  backoffMs: number;
  restartTimer?: NodeJS.Timeout;
  probeTimers: NodeJS.Timeout[];
  /** Set once the container's current process is being stopped on purpose (liveness, termination). */
  stopping: boolean;
  /** The container will not run again (restartPolicy says so, or the pod is terminating). */
  done: boolean;
  /** Init containers only: told whether the container completed (true) or failed for good (false). */
  completed?: (ok: boolean) => void;
}

function newRun(spec: Container, init: boolean): ContainerRun {
  return {
    spec,
    init,
    state: { waiting: { reason: 'PodInitializing' } },
    restartCount: 0,
    ready: false,
    backoffMs: BACKOFF_INITIAL_MS,
    probeTimers: [],
    stopping: false,
    done: false,
  };
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class PodWorker {
  readonly uid: string;
  readonly netns: string;
  private readonly nodeVeth: string;
  private pod: Pod;
  private podIPs: string[] = [];
  private startTime: string | undefined;
  private readonly runs: ContainerRun[];
  private readonly initRuns: ContainerRun[];
  /** Every init container has completed (true with none), or one failed for good (false). */
  private initialized: boolean | null;
  private terminating: Promise<void> | null = null;
  private starting: Promise<void> = Promise.resolve();
  private closed = false;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastStatus = '';
  private tokenTimer: NodeJS.Timeout | undefined;
  private setupFailure: string | null = null;
  /** Port-forward connections into the pod's network namespace. */
  readonly dialer: PodDialer;
  private readonly events: PodEventRecorder;

  constructor(
    pod: Pod,
    private readonly ctx: WorkerContext,
  ) {
    this.pod = pod;
    this.uid = pod.metadata.uid;
    this.netns = podNetnsName(ctx.netnsPrefix, pod);
    this.nodeVeth = nodeVethName(this.netns);
    this.dialer = new PodDialer(this.netns);
    this.initialized = (pod.spec.initContainers ?? []).length === 0 ? true : null;
    this.initRuns = (pod.spec.initContainers ?? []).map((spec) => newRun(spec, true));
    this.runs = pod.spec.containers.map((spec) => newRun(spec, false));
    this.events = new PodEventRecorder(ctx.api, ctx.log, ctx.nodeName);
    if (this.initRuns.length === 0) for (const run of this.runs) run.state = { waiting: { reason: 'ContainerCreating' } };
  }

  get name(): string {
    return `${this.pod.metadata.namespace ?? 'default'}/${this.pod.metadata.name}`;
  }

  get podIP(): string | undefined {
    return this.podIPs[0];
  }

  /** The pod object as last seen (the informer's copy). */
  get current(): Pod {
    return this.pod;
  }

  logFile(container: string): string {
    return join(podDir(this.ctx.stateDir, this.uid), 'logs', `${container}.log`);
  }

  private get dir(): string {
    return podDir(this.ctx.stateDir, this.uid);
  }

  /** Sets the pod up and starts its containers, once `after` (a predecessor's teardown) has settled. */
  start(after: Promise<void>): void {
    this.starting = after.then(() => (this.terminating === null ? this.setUp() : undefined));
  }

  private async setUp(): Promise<void> {
    this.startTime = now();
    try {
      this.podIPs = this.ctx.ipam.allocate(this.uid);
      await createPodNetwork({
        netns: this.netns,
        nodeVeth: this.nodeVeth,
        bridge: this.ctx.bridge,
        addresses: this.podIPs,
        gateways: this.ctx.gateways,
        resolvConf: podResolvConf(this.pod, this.ctx.dns),
        hosts: podHosts(this.pod, this.podIPs),
      });
      this.saveRecord();
      await this.writeServiceAccount();
      await this.writeSecretVolumes();
    } catch (error) {
      this.setupFailure = (error as Error).message;
      this.ctx.log.error('pod setup failed', { pod: this.name, error: this.setupFailure });
      // A volume not there yet (its Secret missing) keeps the containers being created, as the kubelet says it.
      const volume = error instanceof VolumeSetupError;
      const reason = volume ? 'ContainerCreating' : 'CreateContainerError';
      for (const run of this.runs) run.state = { waiting: { reason, message: this.setupFailure } };
      this.events.record(this.pod, volume ? 'FailedMount' : 'FailedCreatePodSandBox', volume ? this.setupFailure : `Failed to create pod sandbox: ${this.setupFailure}`);
      this.reportStatus();
      // Tried again later (the API server may have been away): the set-up starts by removing what it made.
      setTimeout(() => {
        if (this.terminating !== null) return;
        this.setupFailure = null;
        this.starting = this.setUp();
      }, SETUP_RETRY_MS).unref();
      return;
    }
    this.ctx.log.info('pod network ready', { pod: this.name, netns: this.netns, ips: this.podIPs });
    this.initialized = await this.runInitContainers();
    if (this.initialized) for (const run of this.runs) await this.startContainer(run);
    this.reportStatus();
  }

  /** Runs the init containers one after the other, each to completion; false when one failed for good. */
  private async runInitContainers(): Promise<boolean> {
    for (const run of this.initRuns) {
      const ok = await new Promise<boolean>((resolve) => {
        run.completed = resolve;
        void this.startContainer(run);
      });
      if (!ok) return false;
    }
    if (this.initRuns.length > 0) for (const run of this.runs) run.state = { waiting: { reason: 'ContainerCreating' } };
    return this.terminating === null;
  }

  /** A newer version of the pod object arrived. */
  update(pod: Pod): void {
    this.pod = pod;
  }

  /**
   * Stops the containers (SIGTERM, then SIGKILL after the grace period, at most 10 s) and removes the network.
   * 'deleted': then deletes the pod object for good and frees its addresses; 'gone': the object is gone already;
   * 'shutdown': the kubelet stops and the pod stays bound to the node.
   */
  terminate(why: 'deleted' | 'gone' | 'shutdown'): Promise<void> {
    this.terminating ??= this.doTerminate(why);
    return this.terminating;
  }

  private async doTerminate(why: 'deleted' | 'gone' | 'shutdown'): Promise<void> {
    const spec = this.pod.metadata.deletionGracePeriodSeconds ?? this.pod.spec.terminationGracePeriodSeconds ?? 30;
    const graceMs = Math.min(spec, MAX_GRACE_S) * 1000;
    this.ctx.log.info('stopping pod', { pod: this.name, why, graceMs });
    for (const run of [...this.initRuns, ...this.runs]) {
      run.done = true;
      run.completed?.(false);
      clearTimeout(run.restartTimer);
      this.stopProbes(run);
    }
    // A set-up under way (no longer waiting for init containers) finishes first, so that nothing it creates
    // outlives the teardown.
    await this.starting.catch(() => undefined);
    clearTimeout(this.tokenTimer);
    await Promise.all([...this.initRuns, ...this.runs].map((run) => this.stopContainer(run, graceMs)));
    this.dialer.close();
    await removePodNetwork(this.netns, this.nodeVeth).catch((error: unknown) =>
      this.ctx.log.warn('cannot remove pod network', { pod: this.name, error: (error as Error).message }),
    );
    this.closed = true;
    clearTimeout(this.statusTimer);
    if (why !== 'shutdown') this.ctx.ipam.release(this.uid);
    if (why === 'shutdown') rmSync(join(this.dir, 'record.json'), { force: true });
    else rmSync(this.dir, { recursive: true, force: true });
    if (why === 'deleted') await this.deleteObject();
  }

  /**
   * Deletes the pod object with grace period 0, as the kubelet does once the pod is stopped. The first DELETE of
   * a pod already being deleted only shortens its grace period to 0; the second removes it.
   */
  private async deleteObject(): Promise<void> {
    const { namespace = 'default', name } = this.pod.metadata;
    const options = { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: this.uid } };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.ctx.api.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${name}`, options);
      } catch (error) {
        // 404: gone already; 409: the name now belongs to a newer pod (another uid).
        const expected = error instanceof KubeApiError && (error.statusCode === 404 || error.statusCode === 409);
        this.ctx.log[expected ? 'debug' : 'warn']('cannot delete pod', { pod: this.name, error: (error as Error).message });
        return;
      }
    }
  }

  get isTerminating(): boolean {
    return this.terminating !== null;
  }

  private saveRecord(): void {
    const record: PodRecord = {
      uid: this.uid,
      namespace: this.pod.metadata.namespace ?? 'default',
      name: this.pod.metadata.name,
      netns: this.netns,
      processes: [...this.initRuns, ...this.runs].flatMap((r) => (r.running === undefined ? [] : [r.running.record])),
    };
    writePodRecord(this.ctx.stateDir, record);
  }

  // --- service account ---

  private get mountsServiceAccount(): boolean {
    return this.pod.spec.automountServiceAccountToken !== false;
  }

  private async writeServiceAccount(): Promise<void> {
    if (!this.mountsServiceAccount) return;
    const dir = join(this.dir, 'serviceaccount');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const token = await this.fetchToken();
    const write = (file: string, content: string): void => {
      // Replaced by rename, so a reader never sees half a token.
      writeFileSync(join(dir, `.${file}.tmp`), content, { mode: 0o644 });
      renameSync(join(dir, `.${file}.tmp`), join(dir, file));
    };
    write('token', token.token);
    write('ca.crt', this.ctx.caPem);
    write('namespace', this.pod.metadata.namespace ?? 'default');
    if (token.expiresInMs !== null) {
      this.tokenTimer = setTimeout(() => {
        if (!this.closed) void this.writeServiceAccount().catch((error: unknown) => this.ctx.log.warn('token refresh failed', { pod: this.name, error: (error as Error).message }));
      }, token.expiresInMs * 0.8);
      this.tokenTimer.unref();
    }
  }

  /** A token bound to the pod (TokenRequest API), or else the service account's legacy token Secret. */
  private async fetchToken(): Promise<{ token: string; expiresInMs: number | null }> {
    const namespace = this.pod.metadata.namespace ?? 'default';
    const sa = this.pod.spec.serviceAccountName ?? 'default';
    try {
      const answer = await this.ctx.api.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          expirationSeconds: TOKEN_SECONDS,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: this.pod.metadata.name, uid: this.uid },
        },
      });
      return { token: answer.status.token, expiresInMs: TOKEN_SECONDS * 1000 };
    } catch (error) {
      this.ctx.log.warn('TokenRequest failed; using the legacy token Secret', { pod: this.name, error: (error as Error).message });
    }
    // The tokens controller creates the Secret shortly after the service account: wait a little for it.
    for (let attempt = 0; attempt < 20; attempt++) {
      const account = await this.ctx.api.request<{ secrets?: { name: string }[] }>('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}`);
      for (const ref of account.secrets ?? []) {
        const secret = await this.ctx.api.request<{ type?: string; data?: { token?: string } }>('GET', `/api/v1/namespaces/${namespace}/secrets/${ref.name}`);
        if (secret.type === 'kubernetes.io/service-account-token' && secret.data?.token !== undefined) {
          return { token: Buffer.from(secret.data.token, 'base64').toString('utf8'), expiresInMs: null };
        }
      }
      await sleep(500);
    }
    throw new Error(`service account ${namespace}/${sa} has no token: the TokenRequest API failed and no token Secret appeared`);
  }

  // --- secret volumes ---

  private get volumesDir(): string {
    return join(this.dir, 'volumes');
  }

  private volumeDir(name: string): string {
    return join(this.volumesDir, name);
  }

  private async writeSecretVolumes(): Promise<void> {
    const namespace = this.pod.metadata.namespace ?? 'default';
    const secretVolumes = (this.pod.spec.volumes ?? []).flatMap((v) => (v.secret === undefined ? [] : [{ name: v.name, secret: v.secret }]));
    if (secretVolumes.length === 0) return;
    // Root's only: a container reaches its volumes through its mounts, another user on the node not at all.
    mkdirSync(this.volumesDir, { recursive: true, mode: 0o700 });
    chmodSync(this.volumesDir, 0o700);
    for (const volume of secretVolumes) {
      // Names become path parts here: the API server's rules (DNS label, DNS subdomain), checked again.
      if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(volume.name)) throw new VolumeSetupError(volume.name, 'the volume name is not a DNS label');
      const secretName = volume.secret.secretName ?? '';
      if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(secretName)) throw new VolumeSetupError(volume.name, `secretName "${secretName}" is not a Secret name`);
      let data: Record<string, string> | null;
      try {
        const secret = await this.ctx.api.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/secrets/${secretName}`);
        data = secret.data ?? {};
      } catch (error) {
        if (!(error instanceof KubeApiError && error.statusCode === 404)) throw error;
        data = null;
      }
      writeVolume(this.volumeDir(volume.name), secretVolumeFiles(volume.name, volume.secret, data), this.pod.spec.securityContext?.fsGroup);
    }
  }

  // --- containers ---

  private async startContainer(run: ContainerRun): Promise<void> {
    if (run.done || this.terminating !== null) return;
    const env = await this.environment(run);
    if (env === null || run.done || this.terminating !== null) return;
    const resolved = resolveCommand(expandCommand(run.spec, env), this.ctx.images, this.ctx.imageMapFile);
    if (!resolved.ok) {
      this.cannotStart(run, resolved);
      return;
    }
    const runAs = runAsPrefix(this.pod.spec, run.spec);
    if (!runAs.ok) {
      this.cannotStart(run, runAs);
      return;
    }
    const volumeMounts = secretVolumeMounts(this.pod.spec, run.spec, (name) => this.volumeDir(name));
    if (!volumeMounts.ok) {
      this.cannotStart(run, volumeMounts);
      return;
    }
    const mounts: ContainerMount[] = this.mountsServiceAccount ? [{ source: join(this.dir, 'serviceaccount'), target: SERVICE_ACCOUNT_DIR }] : [];
    mounts.push(...volumeMounts.mounts);
    const cwd = run.spec.workingDir ?? join(this.dir, 'rootfs', run.spec.name);
    if (run.spec.workingDir === undefined) mkdirSync(cwd, { recursive: true });
    else if (!existsSync(cwd)) {
      this.cannotStart(run, {
        reason: 'CreateContainerConfigError',
        message: `workingDir ${cwd} does not exist on the node (sandbox containers use the host's file system): create it or change workingDir`,
      });
      return;
    }
    let running: RunningContainer;
    try {
      running = await launchContainer({
        id: `${this.name}/${run.spec.name}`,
        netns: this.netns,
        argv: [...runAs.prefix, ...resolved.argv],
        env,
        cwd,
        logFile: this.logFile(run.spec.name),
        mounts,
      });
    } catch (error) {
      run.state = { waiting: { reason: 'RunContainerError', message: (error as Error).message } };
      this.events.record(this.pod, 'Failed', `Error: ${(error as Error).message}`, { container: { name: run.spec.name, init: run.init } });
      this.scheduleRestart(run);
      return;
    }
    run.running = running;
    run.stopping = false;
    run.ready = false;
    const startedAt = now();
    run.state = { running: { startedAt } };
    this.saveRecord();
    this.ctx.log.info('container started', { pod: this.name, container: run.spec.name, pid: running.record.pid, argv: resolved.argv });
    if (run.spec.readinessProbe === undefined) run.ready = true;
    this.startProbes(run, running);
    this.reportStatus();
    void running.exited.then((exitCode) => this.containerExited(run, running, exitCode, startedAt));
  }

  /**
   * The container's environment, with the ConfigMaps and Secrets it names read now; null when one it needs is
   * missing: the container then waits (CreateContainerConfigError) and is tried again until it appears.
   */
  private async environment(run: ContainerRun): Promise<Record<string, string> | null> {
    try {
      const sources = await fetchEnvSources(this.ctx.api, this.pod.metadata.namespace ?? 'default', run.spec);
      return containerEnvironment(run.spec, {
        pod: this.pod,
        podIPs: this.podIPs,
        hostIP: this.ctx.nodeIP,
        kubernetesServiceHost: this.ctx.kubernetesServiceHost,
        kubernetesServicePort: this.ctx.kubernetesServicePort,
        sources,
        onInvalidNames: (message) => this.events.record(this.pod, 'InvalidEnvironmentVariableNames', message, { container: { name: run.spec.name, init: run.init } }),
      });
    } catch (error) {
      // A missing ConfigMap, Secret or key (ContainerConfigError) or a failed API request: wait and look again.
      this.cannotStart(run, { reason: 'CreateContainerConfigError', message: (error as Error).message });
      clearTimeout(run.restartTimer);
      run.restartTimer = setTimeout(() => void this.startContainer(run), CONFIG_RETRY_MS);
      return null;
    }
  }

  /** The container waits, for a reason it cannot start with (its command, user, mounts or environment). */
  private cannotStart(run: ContainerRun, why: { reason: string; message: string }): void {
    run.state = { waiting: { reason: why.reason, message: why.message } };
    this.ctx.log.warn('container cannot start', { pod: this.name, container: run.spec.name, error: why.message });
    const message = why.reason === 'ErrImagePull' ? `Failed to pull image "${run.spec.image ?? ''}": ${why.message}` : `Error: ${why.message}`;
    this.events.record(this.pod, 'Failed', message, { container: { name: run.spec.name, init: run.init } });
    this.reportStatus();
  }

  private containerExited(run: ContainerRun, running: RunningContainer, exitCode: number, startedAt: string): void {
    if (run.running !== running) return;
    run.running = undefined;
    run.ready = false;
    this.stopProbes(run);
    const finishedAt = now();
    run.state = {
      terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt, containerID: `kubetun://${running.record.pid}` },
    };
    this.ctx.log.info('container exited', { pod: this.name, container: run.spec.name, exitCode });
    if (Date.parse(finishedAt) - Date.parse(startedAt) >= BACKOFF_RESET_MS) run.backoffMs = BACKOFF_INITIAL_MS;
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    // An init container is done once it succeeds; Always means OnFailure for it.
    const again = run.completed !== undefined ? exitCode !== 0 && policy !== 'Never' : policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
    const restart = !run.done && this.terminating === null && again;
    if (restart) this.scheduleRestart(run);
    else {
      run.done = true;
      run.completed?.(exitCode === 0 && this.terminating === null);
    }
    this.reportStatus();
  }

  private scheduleRestart(run: ContainerRun): void {
    const delay = run.backoffMs;
    run.backoffMs = Math.min(run.backoffMs * 2, BACKOFF_MAX_MS);
    if ('terminated' in run.state) {
      const exit = run.state.terminated.exitCode;
      run.lastState = run.state;
      run.state = {
        waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${run.spec.name} pod=${this.pod.metadata.name}` },
      };
      this.events.record(this.pod, 'BackOff', `Back-off restarting failed container ${run.spec.name} in pod ${this.pod.metadata.name} (last exit code ${exit})`, { container: { name: run.spec.name, init: run.init } });
    }
    run.restartTimer = setTimeout(() => {
      run.restartCount++;
      void this.startContainer(run);
    }, delay);
  }

  private async stopContainer(run: ContainerRun, graceMs: number): Promise<void> {
    const running = run.running;
    if (running === undefined) return;
    run.stopping = true;
    await stopProcess(running.record, graceMs);
    await running.exited;
  }

  // --- probes ---

  private startProbes(run: ContainerRun, running: RunningContainer): void {
    const watch = (probe: Probe, onResult: (passed: boolean, failures: number, successes: number) => void): void => {
      let failures = 0;
      let successes = 0;
      const tick = async (): Promise<void> => {
        if (run.running !== running || run.stopping) return;
        const passed = await runProbe(probe, run.spec, this.podIPs[0] ?? '', running.record.pid);
        if (run.running !== running || run.stopping) return;
        if (passed) {
          successes++;
          failures = 0;
        } else {
          failures++;
          successes = 0;
        }
        onResult(passed, failures, successes);
        run.probeTimers[slot] = setTimeout(() => void tick(), (probe.periodSeconds ?? 10) * 1000);
      };
      // One timer slot per probe, replaced at each run: the fired ones are not kept.
      const slot = run.probeTimers.push(setTimeout(() => void tick(), (probe.initialDelaySeconds ?? 0) * 1000)) - 1;
    };
    const readiness = run.spec.readinessProbe;
    if (readiness !== undefined) {
      watch(readiness, (_passed, failures, successes) => {
        const ready = successes >= (readiness.successThreshold ?? 1) ? true : failures >= (readiness.failureThreshold ?? 3) ? false : run.ready;
        if (ready !== run.ready) {
          run.ready = ready;
          this.reportStatus();
        }
      });
    }
    const liveness = run.spec.livenessProbe;
    if (liveness !== undefined) {
      watch(liveness, (_passed, failures) => {
        if (failures < (liveness.failureThreshold ?? 3)) return;
        this.ctx.log.info('liveness probe failed: restarting the container', { pod: this.name, container: run.spec.name });
        run.stopping = true;
        const grace = Math.min(this.pod.spec.terminationGracePeriodSeconds ?? 30, MAX_GRACE_S) * 1000;
        void stopProcess(running.record, grace);
      });
    }
  }

  private stopProbes(run: ContainerRun): void {
    for (const timer of run.probeTimers) clearTimeout(timer);
    run.probeTimers = [];
  }

  // --- status ---

  private phase(): string {
    if (this.setupFailure !== null) return 'Pending';
    if (this.initialized === false && this.terminating === null && this.initRuns.some((r) => r.done)) return 'Failed';
    if (this.initialized !== true) return 'Pending';
    const states = this.runs.map((r) => r.state);
    if (this.runs.every((r) => r.done && 'terminated' in r.state)) {
      return states.every((s) => 'terminated' in s && s.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    const everStarted = this.runs.every((r) => r.restartCount > 0 || !('waiting' in r.state));
    return everStarted ? 'Running' : 'Pending';
  }

  /** The status object, as the kubelet reports it. */
  status(): Record<string, unknown> {
    const allReady = this.runs.every((r) => r.ready && 'running' in r.state);
    const time = now();
    const condition = (type: string, ok: boolean): Record<string, unknown> => ({
      type,
      status: ok ? 'True' : 'False',
      lastProbeTime: null,
      lastTransitionTime: this.transitionTime(type, ok, time),
      ...(ok ? {} : type === 'Ready' || type === 'ContainersReady' ? { reason: 'ContainersNotReady' } : {}),
    });
    return {
      phase: this.phase(),
      hostIP: this.ctx.nodeIP,
      ...(this.podIPs.length > 0 ? { podIP: this.podIPs[0], podIPs: this.podIPs.map((ip) => ({ ip })) } : {}),
      startTime: this.startTime,
      conditions: [condition('Initialized', this.initialized === true), condition('Ready', allReady), condition('ContainersReady', allReady), condition('PodScheduled', true)],
      ...(this.initRuns.length > 0 ? { initContainerStatuses: this.initRuns.map((r) => this.containerStatus(r)) } : {}),
      containerStatuses: this.runs.map((r) => this.containerStatus(r)),
    };
  }

  private containerStatus(r: ContainerRun): Record<string, unknown> {
    return {
      name: r.spec.name,
      state: r.state,
      lastState: r.lastState ?? {},
      ready: r.ready && 'running' in r.state,
      restartCount: r.restartCount,
      image: r.spec.image ?? '',
      imageID: `kubetun://${r.spec.image ?? ''}`,
      started: 'running' in r.state,
      ...(r.running !== undefined ? { containerID: `kubetun://${r.running.record.pid}` } : {}),
    };
  }

  private readonly transitions = new Map<string, { ok: boolean; at: string }>();

  private transitionTime(type: string, ok: boolean, time: string): string {
    const last = this.transitions.get(type);
    if (last !== undefined && last.ok === ok) return last.at;
    this.transitions.set(type, { ok, at: time });
    return time;
  }

  /** Sends the status soon (changes coming together go in one PATCH). */
  reportStatus(): void {
    if (this.closed || this.statusTimer !== undefined) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      void this.sendStatus();
    }, STATUS_DEBOUNCE_MS);
  }

  private async sendStatus(): Promise<void> {
    if (this.closed) return;
    const status = this.status();
    const text = JSON.stringify(status);
    if (text === this.lastStatus) return;
    const { namespace = 'default', name } = this.pod.metadata;
    try {
      await this.ctx.api.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, { metadata: { uid: this.uid }, status });
      this.lastStatus = text;
    } catch (error) {
      if (error instanceof KubeApiError && error.statusCode === 404) return;
      this.ctx.log.warn('cannot update pod status; retrying', { pod: this.name, error: (error as Error).message });
      setTimeout(() => this.reportStatus(), 1_000).unref();
    }
  }
}
