// The sandbox kubelet against a real control plane (kube-apiserver, controller-manager, scheduler v1.20.2) in a
// test namespace: node registration, a Deployment scheduled onto it and served, the pod's env and token,
// deletion and replacement, restarts, a missing image, secret volumes, port-forward through the API server, and SIGTERM.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { startTestControlPlane, TEST_API_ADDRESS, type TestControlPlane } from '../../helpers/control-plane.js';
import { cleanupKubelet } from '../../../src/sandbox/kubelet/index.js';
import { podNetnsName } from '../../../src/sandbox/kubelet/pod-env.js';

const MAIN = fileURLToPath(new URL('../../../src/sandbox/kubelet/main.js', import.meta.url));
const PF_CLIENT = fileURLToPath(new URL('./port-forward-client.js', import.meta.url));
const WS_CLIENT = fileURLToPath(new URL('./kubelet-ws-client.js', import.meta.url));
const NODE = 'kt-node-1';
const POD_CIDR = '10.244.1.0/24';
const BRIDGE = 'ktbr0';
const NETNS_PREFIX = `ktk${process.pid}-`;

// Whether the host had a secrets folder in its run folder before any pod here ran (a machine's own, say).
const runSecretsBefore = existsSync(`${realpathSync('/var/run')}/secrets`);

interface PodJson {
  metadata: { name: string; uid: string; deletionTimestamp?: string; labels?: Record<string, string> };
  status?: {
    phase?: string;
    podIP?: string;
    hostIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      ready: boolean;
      restartCount: number;
      containerID?: string;
      state: { waiting?: { reason: string; message?: string }; running?: unknown; terminated?: unknown };
      lastState?: { terminated?: { exitCode: number } };
    }[];
  };
}

async function getJson<T>(cp: TestControlPlane, path: string): Promise<{ status: number; body: T }> {
  const [res] = await cp.api([{ method: 'GET', path }]);
  return { status: res!.status, body: (res!.status === 200 ? JSON.parse(res!.body) : res!.body) as T };
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? '' : ` (last error: ${(last as Error).message})`}`);
}

async function podsWithLabel(cp: TestControlPlane, app: string): Promise<PodJson[]> {
  const { body } = await getJson<{ items: PodJson[] }>(cp, `/api/v1/namespaces/default/pods?labelSelector=app%3D${app}`);
  return body.items;
}

const isReady = (pod: PodJson): boolean =>
  pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

const pidOf = (pod: PodJson): number => Number(/^kubetun:\/\/(\d+)$/.exec(pod.status?.containerStatuses?.[0]?.containerID ?? '')?.[1]);

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

async function readyPod(cp: TestControlPlane, app: string, notUid?: string): Promise<PodJson> {
  return until(`a Ready pod of ${app}`, 60_000, async () =>
    (await podsWithLabel(cp, app)).find((p) => isReady(p) && p.metadata.uid !== notUid && p.metadata.deletionTimestamp === undefined),
  );
}

function deployment(name: string): unknown {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'web',
              image: 'kubetun.test/not-in-the-table:1.0',
              command: ['python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0'],
              env: [
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'GREETING', value: 'hello from $(POD_IP)' },
              ],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

function pod(name: string, container: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', ...container }], ...extra },
  };
}

async function create(cp: TestControlPlane, path: string, body: unknown): Promise<void> {
  const [res] = await cp.api([{ method: 'POST', path, body }]);
  assert.equal(res!.status, 201, `POST ${path}: ${res!.body}`);
}

test('sandbox kubelet runs pods of a real control plane', { timeout: 300_000 }, async (t: TestContext) => {
  const cp = await startTestControlPlane(t, 'kubelet');
  if (cp === null) return;
  const stateDir = mkdtempSync(join(tmpdir(), 'kt-kubelet-'));
  const imageMap = join(stateDir, 'images.json');
  writeFileSync(imageMap, JSON.stringify({ 'kubetun.test/sleeper': { entrypoint: ['sleep'], args: ['300'] } }));
  let kubelet: ChildProcess | null = null;
  let kubeletLog = '';
  try {
    for (const args of [['link', 'add', BRIDGE, 'type', 'bridge'], ['link', 'set', BRIDGE, 'up']]) {
      const r = await cp.ns.exec('ip', args);
      assert.equal(r.code, 0, r.stderr);
    }
    const kubeletArgs = [
      MAIN,
      '--kubeconfig', cp.plane.kubeconfig,
      '--node-name', NODE,
      '--node-ip', TEST_API_ADDRESS,
      '--port', '10250',
      '--pod-cidr', POD_CIDR,
      '--bridge', BRIDGE,
      '--netns-prefix', NETNS_PREFIX,
      '--state-dir', join(stateDir, 'kubelet'),
      // No DNS server runs here: pointed at the node's own address, a pod's lookups (python's http.server looks
      // up its own name before it listens) fail at once with port unreachable instead of timing out.
      '--cluster-dns', TEST_API_ADDRESS,
      '--kubernetes-service-host', TEST_API_ADDRESS,
      '--kubernetes-service-port', '6443',
      '--image-map', imageMap,
      '--log-level', 'debug',
    ];
    kubelet = cp.ns.spawn(process.execPath, kubeletArgs);
    kubelet.stderr!.setEncoding('utf8').on('data', (chunk: string) => (kubeletLog += chunk));
    const exited = new Promise<number | null>((resolve) => kubelet!.once('exit', (code) => resolve(code)));

    await t.test('the node registers Ready with its pod CIDR and kubelet port', async () => {
      const node = await until('node Ready', 30_000, async () => {
        const { status, body } = await getJson<{
          spec: { podCIDRs?: string[] };
          status: { conditions?: { type: string; status: string }[]; daemonEndpoints: { kubeletEndpoint: { Port: number } }; addresses: { type: string; address: string }[] };
        }>(cp, `/api/v1/nodes/${NODE}`);
        return status === 200 && body.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? body : null;
      });
      assert.deepEqual(node.spec.podCIDRs, [POD_CIDR]);
      assert.equal(node.status.daemonEndpoints.kubeletEndpoint.Port, 10250);
      assert.deepEqual(node.status.addresses, [
        { type: 'InternalIP', address: TEST_API_ADDRESS },
        { type: 'Hostname', address: NODE },
      ]);
      const bridge = await cp.ns.exec('ip', ['-4', 'addr', 'show', 'dev', BRIDGE]);
      assert.match(bridge.stdout, /inet 10\.244\.1\.1\/24/);
    });

    await t.test('a second kubelet for the node with other pod CIDRs is refused before it changes anything', async () => {
      const otherState = join(stateDir, 'other');
      const args = kubeletArgs.map((a) => (a === POD_CIDR ? '10.244.9.0/24' : a === '10250' ? '10259' : a === join(stateDir, 'kubelet') ? otherState : a));
      const r = await cp.ns.exec(process.execPath, args, { timeoutMs: 20_000 });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /node kt-node-1 already exists with pod CIDRs 10\.244\.1\.0\/24, not 10\.244\.9\.0\/24: delete the Node object or use its CIDRs/);
      const bridge = await cp.ns.exec('ip', ['-4', 'addr', 'show', 'dev', BRIDGE]);
      assert.doesNotMatch(bridge.stdout, /10\.244\.9\.1/);
    });

    await create(cp, '/apis/apps/v1/namespaces/default/deployments', deployment('web'));
    let first: PodJson | undefined;

    await t.test('a Deployment of a command (image not in the table) is scheduled, runs, is Ready and serves', async () => {
      first = await readyPod(cp, 'web');
      assert.match(first.status!.podIP!, /^10\.244\.1\.(\d+)$/);
      assert.notEqual(first.status!.podIP, '10.244.1.1');
      assert.equal(first.status!.hostIP, TEST_API_ADDRESS);
      const curl = await cp.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${first.status!.podIP}:8080/`]);
      assert.equal(curl.stdout, '200', curl.stderr);
    });

    await t.test("the pod's environment has POD_IP from its fieldRef and expanded references", () => {
      assert.ok(first, 'needs the Ready pod');
      const environ = readFileSync(`/proc/${pidOf(first)}/environ`, 'utf8').split('\0');
      assert.ok(environ.includes(`POD_IP=${first.status!.podIP}`), environ.join(' '));
      assert.ok(environ.includes(`GREETING=hello from ${first.status!.podIP}`));
      assert.ok(environ.includes(`HOSTNAME=${first.metadata.name}`));
      assert.ok(environ.includes(`KUBERNETES_SERVICE_HOST=${TEST_API_ADDRESS}`));
    });

    await t.test("the pod's service-account token and ca.crt authenticate it to the API server", async () => {
      assert.ok(first, 'needs the Ready pod');
      const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
      const script = [
        `curl -sS --cacert ${sa}/ca.crt -H "Authorization: Bearer $(cat ${sa}/token)" https://${TEST_API_ADDRESS}:6443/version`,
        `curl -sS --cacert ${sa}/ca.crt -H "Authorization: Bearer $(cat ${sa}/token)" https://${TEST_API_ADDRESS}:6443/api/v1/namespaces/default/pods`,
        `cat ${sa}/namespace`,
      ].join('; echo; ');
      // Into the container's own network and mount namespaces, where the token is mounted.
      const r = await cp.ns.exec('nsenter', ['-t', String(pidOf(first)), '-n', '-m', 'sh', '-c', script]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /"gitVersion": "v1\.20\.2"/);
      // Authenticated as the pod's service account (which RBAC does not let list pods): the token is valid.
      assert.match(r.stdout, /system:serviceaccount:default:default/);
      assert.match(r.stdout, /\ndefault$/);
      // The mount point exists only in the pod's own mount namespace, not on the host (unless it was there before).
      if (!runSecretsBefore) assert.ok(!existsSync(`${realpathSync('/var/run')}/secrets`), 'the kubelet created the secrets folder on the host');
    });

    await t.test('port-forward through the API server reaches the pod (client-node PortForward)', async () => {
      assert.ok(first, 'needs the Ready pod');
      const r = await cp.ns.exec(process.execPath, [PF_CLIENT, cp.plane.kubeconfig, 'default', first.metadata.name, '8080'], { timeoutMs: 20_000 });
      assert.equal(r.code, 0, `${r.stderr}\n${kubeletLog.slice(-2000)}`);
      const answer = JSON.parse(r.stdout) as { status: number; body: string };
      assert.equal(answer.status, 200);
      assert.match(answer.body, /Directory listing/);
    });

    await t.test('port-forward dials localhost inside the pod: a server on the pod loopback only is reached, as non-root (runAsUser)', async () => {
      const secured = {
        image: 'kubetun.test/not-in-the-table:1.0',
        // The system python: the kubelet's PATH may lead to a per-user one that uid 65532 cannot run.
        command: ['/usr/bin/python3', '-m', 'http.server', '8081', '--bind', '127.0.0.1', '--directory', '/'],
        securityContext: { runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        // Ready once it listens on the pod's loopback (an exec probe runs in the pod's network namespace).
        readinessProbe: { exec: { command: ['/usr/bin/python3', '-c', 'import socket; socket.create_connection(("127.0.0.1", 8081))'] }, periodSeconds: 1 },
      };
      await create(cp, '/api/v1/namespaces/default/pods', pod('loopback', secured, { securityContext: { runAsNonRoot: true } }));
      const ready = await readyPod(cp, 'loopback');
      const status = readFileSync(`/proc/${pidOf(ready)}/status`, 'utf8');
      assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
      assert.match(status, /^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.match(status, /^CapBnd:\s+0+$/m);
      // From the node, the pod IP does not answer on that port …
      const direct = await cp.ns.exec('curl', ['-sS', '-m', '3', `http://${ready.status!.podIP}:8081/`]);
      assert.notEqual(direct.code, 0, 'the pod IP answered on a port bound to the pod loopback');
      // … but a port-forward does, as a real kubelet's does.
      const r = await cp.ns.exec(process.execPath, [PF_CLIENT, cp.plane.kubeconfig, 'default', ready.metadata.name, '8081'], { timeoutMs: 20_000 });
      assert.equal(r.code, 0, `${r.stderr}\n${kubeletLog.slice(-2000)}`);
      assert.equal((JSON.parse(r.stdout) as { status: number }).status, 200);
      // runAsNonRoot without a runAsUser is refused, as a kubelet refuses an image that would run as root.
      await create(cp, '/api/v1/namespaces/default/pods', pod('rooted', { image: 'kubetun.test/sleeper' }, { securityContext: { runAsNonRoot: true } }));
      await until('the rooted pod refused', 30_000, async () => {
        const [answer] = await cp.api([{ method: 'GET', path: '/api/v1/namespaces/default/pods/rooted' }]);
        return /CreateContainerConfigError/.test(answer!.body) && /runAsNonRoot/.test(answer!.body);
      });
      await cp.api([{ method: 'DELETE', path: '/api/v1/namespaces/default/pods/loopback' }, { method: 'DELETE', path: '/api/v1/namespaces/default/pods/rooted' }]);
    });

    await t.test('kubelet port-forward protocol: port prefixes, base64 framing, dial errors, unknown pods', async () => {
      assert.ok(first, 'needs the Ready pod');
      const url = (pod: string, port: number): string => `wss://${TEST_API_ADDRESS}:10250/portForward/default/${pod}?port=${port}`;
      const ws = async (...args: string[]): Promise<{ protocol: string; frames: { channel: number; text: string }[]; closed?: boolean; status?: number; body?: string }> => {
        const r = await cp.ns.exec(process.execPath, [WS_CLIENT, ...args], { timeoutMs: 15_000 });
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      const portBytes = (port: number): string => String.fromCharCode(port & 0xff, port >> 8);
      const ok = await ws(url(first.metadata.name, 8080), 'base64.channel.k8s.io', 'GET / HTTP/1.0\r\n\r\n', '5000');
      assert.equal(ok.protocol, 'base64.channel.k8s.io');
      assert.deepEqual(ok.frames.slice(0, 2), [
        { channel: 0, text: portBytes(8080) },
        { channel: 1, text: portBytes(8080) },
      ]);
      const data = ok.frames.slice(2).filter((f) => f.channel === 0).map((f) => f.text).join('');
      assert.match(data, /^HTTP\/1\.0 200 OK/);
      assert.equal(ok.closed, true, 'the connection closes when the pod closes its side');

      const refused = await ws(url(first.metadata.name, 9), 'v4.channel.k8s.io', 'hello', '5000');
      assert.equal(refused.protocol, 'v4.channel.k8s.io');
      const errors = refused.frames.filter((f) => f.channel === 1).map((f) => f.text);
      assert.equal(errors[0], portBytes(9));
      assert.match(errors[1] ?? '', new RegExp(`error forwarding port 9 to pod default/${first.metadata.name}: connect ECONNREFUSED`));
      assert.equal(refused.closed, true);

      const unknown = await ws(url('no-such-pod', 80), 'v4.channel.k8s.io', '', '5000');
      assert.equal(unknown.status, 404);
      assert.match(unknown.body ?? '', /pod default\/no-such-pod is not running on node kt-node-1/);
    });

    await t.test('a deleted pod is stopped and torn down, and the Deployment replaces it', async () => {
      assert.ok(first, 'needs the Ready pod');
      const pid = pidOf(first);
      const netns = podNetnsName(NETNS_PREFIX, first);
      assert.ok(alive(pid) && existsSync(`/run/netns/${netns}`) && existsSync(`/etc/netns/${netns}/resolv.conf`));
      const [res] = await cp.api([{ method: 'DELETE', path: `/api/v1/namespaces/default/pods/${first.metadata.name}` }]);
      assert.equal(res!.status, 200, res!.body);
      await until('the pod object to go', 30_000, async () => (await getJson(cp, `/api/v1/namespaces/default/pods/${first!.metadata.name}`)).status === 404);
      assert.equal(alive(pid), false);
      assert.equal(existsSync(`/run/netns/${netns}`), false);
      assert.equal(existsSync(`/etc/netns/${netns}`), false);
      const replacement = await readyPod(cp, 'web', first.metadata.uid);
      const curl = await cp.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${replacement.status!.podIP}:8080/`]);
      assert.equal(curl.stdout, '200', curl.stderr);
    });

    await create(cp, '/api/v1/namespaces/default/pods', pod('crasher', { image: 'kubetun.test/sleeper', command: ['sh', '-c', 'echo started; exit 3'] }));
    await create(
      cp,
      '/api/v1/namespaces/default/pods',
      pod('initialized', { image: 'kubetun.test/sleeper' }, { initContainers: [{ name: 'init', image: 'x', command: ['sleep', '1'] }] }),
    );
    await create(cp, '/api/v1/namespaces/default/pods', pod('oneshot', { image: 'x', command: ['true'] }, { restartPolicy: 'Never' }));
    await create(cp, '/api/v1/namespaces/default/pods', pod('doomed', { image: 'x', command: ['false'] }, { restartPolicy: 'Never' }));
    await create(cp, '/api/v1/namespaces/default/pods', pod('nowhere', { image: 'x', command: ['true'], workingDir: '/no/such/folder' }));
    await create(cp, '/api/v1/namespaces/default/pods', pod('noimage', { image: 'registry.example/nothing:2' }));
    await create(cp, '/api/v1/namespaces/default/pods', pod('sleeper', { image: 'kubetun.test/sleeper:latest' }, { automountServiceAccountToken: false }));

    await create(
      cp,
      '/api/v1/namespaces/default/pods',
      pod('unready', {
        image: 'kubetun.test/sleeper',
        command: ['python3', '-m', 'http.server', '8080'],
        readinessProbe: { httpGet: { path: '/no-such-page', port: 8080 }, periodSeconds: 1 },
      }),
    );
    await create(
      cp,
      '/api/v1/namespaces/default/pods',
      pod('unlive', {
        image: 'kubetun.test/sleeper',
        livenessProbe: { exec: { command: ['test', '-e', '/no-such-file'] }, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 2 },
      }),
    );

    await t.test('probes: a failing httpGet readiness probe keeps a running pod unready', async () => {
      const unready = await until('the unready pod running', 30_000, async () => (await podsWithLabel(cp, 'unready')).find((p) => p.status?.phase === 'Running'));
      // Its server answers (404 for the probe's page) and still the pod is not Ready.
      await until('a 404 from the server', 20_000, async () => {
        const curl = await cp.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${unready.status!.podIP}:8080/no-such-page`]);
        return curl.stdout === '404';
      });
      await sleep(1_500);
      const now = (await podsWithLabel(cp, 'unready'))[0]!;
      assert.equal(now.status!.containerStatuses![0]!.ready, false);
      assert.equal(now.status!.containerStatuses![0]!.restartCount, 0);
      assert.equal(now.status!.conditions!.find((c) => c.type === 'Ready')?.status, 'False');
    });

    await t.test('probes: a failing exec liveness probe restarts the container', async () => {
      await until('a liveness restart', 30_000, async () => ((await podsWithLabel(cp, 'unlive'))[0]?.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1);
    });

    await t.test('a container that exits is restarted with back-off doubling from 1 s, restartCount rising', async () => {
      const crasher = await until('restartCount ≥ 3', 30_000, async () => {
        const p = (await podsWithLabel(cp, 'crasher'))[0];
        return (p?.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 3 ? p : null;
      });
      const status = crasher.status!.containerStatuses![0]!;
      assert.equal(status.lastState?.terminated?.exitCode, 3);
      assert.equal(crasher.status!.phase, 'Running');
      // The container's log has a line per start: the gaps between them grow about 1 s, 2 s, 4 s.
      const log = readFileSync(join(stateDir, 'kubelet', 'pods', crasher.metadata.uid, 'logs', 'main.log'), 'utf8');
      const starts = [...log.matchAll(/^--- (\S+) kubetun kubelet starts/gm)].map((m) => Date.parse(m[1]!));
      const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
      assert.ok(gaps.length >= 3, log);
      assert.ok(gaps[0]! >= 900 && gaps[1]! >= 1_900 && gaps[2]! >= 3_900 && gaps[2]! < 6_000, `gaps ${gaps.join(', ')} ms`);
      // The same log through the API server's pods/log (the kubelet's /containerLogs).
      const [res] = await cp.api([{ method: 'GET', path: '/api/v1/namespaces/default/pods/crasher/log?tailLines=1' }]);
      assert.equal(res!.status, 200, res!.body);
      assert.equal(res!.body, 'started\n');
    });

    await t.test('init containers run to completion first; restartPolicy Never ends in Succeeded or Failed', async () => {
      const initialized = await readyPod(cp, 'initialized');
      const init = (initialized.status as { initContainerStatuses?: { state: { terminated?: { exitCode: number; finishedAt: string } } }[] })
        .initContainerStatuses?.[0]?.state.terminated;
      assert.equal(init?.exitCode, 0);
      assert.equal(initialized.status!.conditions!.find((c) => c.type === 'Initialized')?.status, 'True');
      const started = (initialized.status!.containerStatuses![0]!.state.running as { startedAt: string }).startedAt;
      assert.ok(Date.parse(started) >= Date.parse(init!.finishedAt));
      await until('oneshot Succeeded', 20_000, async () => (await podsWithLabel(cp, 'oneshot'))[0]?.status?.phase === 'Succeeded');
      await until('doomed Failed', 20_000, async () => (await podsWithLabel(cp, 'doomed'))[0]?.status?.phase === 'Failed');
    });

    await t.test('an image neither in the table nor given a command waits with ErrImagePull naming both', async () => {
      const waiting = await until('ErrImagePull', 30_000, async () => (await podsWithLabel(cp, 'noimage'))[0]?.status?.containerStatuses?.[0]?.state.waiting);
      assert.equal(waiting.reason, 'ErrImagePull');
      assert.match(waiting.message ?? '', /registry\.example\/nothing:2/);
      assert.ok(waiting.message?.includes(imageMap), waiting.message);
      assert.equal((await podsWithLabel(cp, 'noimage'))[0]?.status?.phase, 'Pending');
    });

    await t.test('a workingDir missing on the node waits with CreateContainerConfigError naming it', async () => {
      const waiting = await until('CreateContainerConfigError', 30_000, async () => (await podsWithLabel(cp, 'nowhere'))[0]?.status?.containerStatuses?.[0]?.state.waiting);
      assert.equal(waiting.reason, 'CreateContainerConfigError');
      assert.match(waiting.message ?? '', /workingDir \/no\/such\/folder does not exist on the node.*create it or change workingDir/);
    });

    await t.test("an image from the table runs its entrypoint and default args; automount false mounts no token", async () => {
      const sleeper = await readyPod(cp, 'sleeper');
      const pid = pidOf(sleeper);
      assert.deepEqual(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== ''), ['sleep', '300']);
      const r = await cp.ns.exec('nsenter', ['-t', String(pid), '-m', 'ls', '/var/run/secrets/kubernetes.io/serviceaccount']);
      assert.equal(r.stdout.trim(), '');
    });

    await t.test('secret volumes: the keys as read-only files at mountPath with their modes, read by runAsUser; a missing Secret keeps the pod ContainerCreating until it exists', async () => {
      const secret = (name: string): unknown => ({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name },
        data: { 'tls.crt': Buffer.from(`CERT of ${name}`).toString('base64'), 'tls.key': Buffer.from(`KEY of ${name}`).toString('base64') },
      });
      // The container lists what it sees, as uid 65532 (sandbox images have the node's file system), then ends.
      const lister = {
        image: 'x',
        command: ['sh', '-c', 'cd /etc/kubetun && for f in tls/* tls/*/* extra/*; do [ -f "$f" ] && echo "$f $(stat -c %a "$f") $(cat "$f")"; done; touch tls/new 2>/dev/null && echo writable; true'],
        securityContext: { runAsUser: 65532, runAsGroup: 65532 },
        volumeMounts: [{ name: 'tls', mountPath: '/etc/kubetun/tls', readOnly: true }],
      };
      const secretPod = (name: string, tls: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown =>
        pod(name, lister, { restartPolicy: 'Never', volumes: [{ name: 'tls', secret: tls }], ...extra });
      const lines = async (name: string): Promise<string[]> => {
        await until(`${name} Succeeded`, 30_000, async () => (await podsWithLabel(cp, name))[0]?.status?.phase === 'Succeeded');
        const [res] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/default/pods/${name}/log` }]);
        assert.equal(res!.status, 200, res!.body);
        return res!.body.split('\n').filter((line) => line !== '' && !line.startsWith('--- '));
      };
      await create(cp, '/api/v1/namespaces/default/secrets', secret('tls-pair'));
      await create(cp, '/api/v1/namespaces/default/pods', secretPod('mounted', { secretName: 'tls-pair' }));
      // Listed items at their paths, a 0400 mode shared with the fsGroup (which the process is in), and an optional
      // volume of a missing Secret, mounted empty.
      await create(
        cp,
        '/api/v1/namespaces/default/pods',
        pod(
          'picked',
          { ...lister, volumeMounts: [...lister.volumeMounts, { name: 'extra', mountPath: '/etc/kubetun/extra', readOnly: true }] },
          {
            restartPolicy: 'Never',
            securityContext: { fsGroup: 2000 },
            volumes: [
              { name: 'tls', secret: { secretName: 'tls-pair', defaultMode: 0o400, items: [{ key: 'tls.key', path: 'keys/server.key' }] } },
              { name: 'extra', secret: { secretName: 'absent', optional: true } },
            ],
          },
        ),
      );
      await create(cp, '/api/v1/namespaces/default/pods', secretPod('late', { secretName: 'late-pair' }));
      assert.deepEqual(await lines('mounted'), ['tls/tls.crt 644 CERT of tls-pair', 'tls/tls.key 644 KEY of tls-pair']);
      // On the node, the files are root's only: another user there cannot read the Secret.
      const mounted = (await podsWithLabel(cp, 'mounted'))[0]!;
      assert.equal(statSync(join(stateDir, 'kubelet', 'pods', mounted.metadata.uid, 'volumes')).mode & 0o777, 0o700);
      assert.deepEqual(await lines('picked'), ['tls/keys/server.key 440 KEY of tls-pair']);
      const waiting = await until('late waiting for its Secret', 30_000, async () => (await podsWithLabel(cp, 'late'))[0]?.status?.containerStatuses?.[0]?.state.waiting);
      assert.equal(waiting.reason, 'ContainerCreating');
      assert.match(waiting.message ?? '', /MountVolume\.SetUp failed for volume "tls" : secret "late-pair" not found/);
      assert.equal((await podsWithLabel(cp, 'late'))[0]?.status?.phase, 'Pending');
      await create(cp, '/api/v1/namespaces/default/secrets', secret('late-pair'));
      assert.deepEqual(await lines('late'), ['tls/tls.crt 644 CERT of late-pair', 'tls/tls.key 644 KEY of late-pair']);
      // The mount points were made in the pods' own mount namespaces, not on the host.
      assert.equal(existsSync('/etc/kubetun'), false, 'the kubelet created /etc/kubetun on the host');
    });

    await t.test('SIGTERM: the kubelet stops its pods, removes their namespaces, marks the node NotReady, exits 0', async () => {
      const running = [...(await podsWithLabel(cp, 'web')), ...(await podsWithLabel(cp, 'sleeper'))].filter(isReady);
      running.push(...(await podsWithLabel(cp, 'unready')).filter((p) => alive(pidOf(p))));
      assert.ok(running.length >= 2);
      kubelet!.kill('SIGTERM');
      assert.equal(await exited, 0, kubeletLog.slice(-2000));
      for (const p of running) {
        assert.equal(alive(pidOf(p)), false, `${p.metadata.name} still runs`);
        assert.equal(existsSync(`/run/netns/${podNetnsName(NETNS_PREFIX, p)}`), false);
      }
      const { body } = await getJson<{ status: { conditions: { type: string; status: string }[] } }>(cp, `/api/v1/nodes/${NODE}`);
      assert.equal(body.status.conditions.find((c) => c.type === 'Ready')?.status, 'False');
    });

    await t.test('a restarted kubelet runs its pods again; after it is killed, cleanupKubelet removes what it left', async () => {
      const restarted = cp.ns.spawn(process.execPath, kubeletArgs);
      restarted.stderr!.setEncoding('utf8').on('data', (chunk: string) => (kubeletLog += chunk));
      const web = await until('web Ready again', 60_000, async () => (await podsWithLabel(cp, 'web')).find((p) => isReady(p) && alive(pidOf(p))));
      const netns = podNetnsName(NETNS_PREFIX, web);
      assert.ok(existsSync(`/run/netns/${netns}`));
      restarted.kill('SIGKILL');
      await new Promise((resolve) => restarted.once('exit', resolve));
      assert.ok(alive(pidOf(web)), 'a killed kubelet leaves its pods running');
      const cleaned = await cleanupKubelet(join(stateDir, 'kubelet'));
      assert.ok(cleaned.some((r) => r.uid === web.metadata.uid));
      assert.equal(alive(pidOf(web)), false);
      assert.equal(existsSync(`/run/netns/${netns}`), false);
      assert.equal(existsSync(`/etc/netns/${netns}`), false);
    });
  } finally {
    if (kubelet !== null && kubelet.exitCode === null) kubelet.kill('SIGKILL');
    await cleanupKubelet(join(stateDir, 'kubelet'));
    await cp.destroy();
    rmSync(stateDir, { recursive: true, force: true });
    if (process.env.KUBELET_TEST_LOG) writeFileSync(process.env.KUBELET_TEST_LOG, kubeletLog);
  }
});
