// Finding the traffic manager and port-forwarding to it through a real API server (startTestControlPlane) with
// the sandbox kubelet serving pods/portforward. Everything that talks to the API runs inside the control
// plane's namespace: test/k8s/port-forward-probe.ts and the real CLI.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { cleanupKubelet } from '../../src/sandbox/kubelet/kubelet.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/control-plane.js';

const PROBE = fileURLToPath(new URL('./port-forward-probe.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const KUBELET = fileURLToPath(new URL('../../src/sandbox/kubelet/main.js', import.meta.url));
const NODE_IP = '198.18.0.1';
const NAMESPACE = 'kubetun';

type ProbeLine = {
  target?: { pod: string; port: number };
  response?: string;
  error?: string;
  connected?: string;
  disconnected?: string;
  retry?: string;
  status?: Record<string, unknown>;
  rootUrl?: string;
  rootVersion?: string;
};

async function probe(cp: TestControlPlane, args: string[]): Promise<ProbeLine> {
  const result = await cp.ns.exec(process.execPath, [PROBE, ...args], { timeoutMs: 30_000 });
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  assert.ok(last.startsWith('{'), `the probe printed no result: ${result.stdout} ${result.stderr}`);
  return JSON.parse(last) as ProbeLine;
}

/** Repeats `attempt` until `done` holds for its answer (or the deadline passes), returning the last answer. */
async function until(attempt: () => Promise<ProbeLine>, done: (line: ProbeLine) => boolean, timeoutMs: number): Promise<ProbeLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = await attempt();
    if (done(line) || Date.now() > deadline) return line;
    await sleep(500);
  }
}

async function apply(cp: TestControlPlane, path: string, body: unknown): Promise<void> {
  const [response] = await cp.api([{ method: 'POST', path, body }]);
  assert.equal(response!.status, 201, `POST ${path}: ${response!.body}`);
}

function managerObjects() {
  const labels = { app: 'traffic-manager' };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'traffic-manager', namespace: NAMESPACE },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          automountServiceAccountToken: false,
          containers: [
            {
              name: 'manager',
              image: 'kubetun/test-manager',
              // As installed: tunnels on the pod's loopback (only a port-forward reaches them), probes on their own port.
              command: [process.execPath, MAIN, 'traffic-manager', '--listen', '127.0.0.1:8081', '--health-listen', '0.0.0.0:8082', '--pod-cidr', '10.244.0.0/16', '--service-cidr', '10.96.0.0/16'],
              ports: [{ name: 'api', containerPort: 8081 }, { name: 'health', containerPort: 8082 }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'traffic-manager', namespace: NAMESPACE },
    spec: { selector: labels, ports: [{ name: 'api', port: 8081, targetPort: 'api' }] },
  };
  return { deployment, service };
}

/** A kubeconfig for the same server whose user has a token the API server does not know. */
function badTokenKubeconfig(admin: string, dir: string): string {
  const config = new KubeConfig();
  config.loadFromFile(admin);
  const cluster = config.getCurrentCluster()!;
  const bad = new KubeConfig();
  bad.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'expired', token: 'not-a-valid-token' }],
    contexts: [{ name: 'expired', cluster: cluster.name, user: 'expired' }],
    currentContext: 'expired',
  });
  const file = join(dir, 'bad-token.kubeconfig');
  writeFileSync(file, bad.exportConfig());
  return file;
}

/** The JSON lines a long-running probe prints, awaited one matching line at a time. */
function lines(child: ChildProcess): (match: (line: ProbeLine) => boolean, timeoutMs: number) => Promise<ProbeLine> {
  const seen: ProbeLine[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (text.startsWith('{')) seen.push(JSON.parse(text) as ProbeLine);
    for (const wake of waiters.splice(0)) wake();
  });
  return async (match, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = seen.findIndex(match);
      if (index >= 0) return seen.splice(0, index + 1).at(-1)!;
      const left = deadline - Date.now();
      assert.ok(left > 0, `no matching line within ${timeoutMs} ms; the latest: ${JSON.stringify(seen.slice(-3))}`);
      // Unreferenced: a leftover timer must not keep the test process alive.
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(left, undefined, { ref: false })]);
    }
  };
}

async function podPid(cp: TestControlPlane, pod: string): Promise<number> {
  const [response] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/${NAMESPACE}/pods/${pod}` }]);
  const status = (JSON.parse(response!.body) as { status: { containerStatuses: { containerID: string }[] } }).status;
  const pid = Number(/^kubetun:\/\/([0-9]+)$/.exec(status.containerStatuses[0]!.containerID)?.[1]);
  assert.ok(pid > 1, `no pid in ${JSON.stringify(status)}`);
  return pid;
}

async function stopKubelet(kubelet: ChildProcess): Promise<void> {
  if (kubelet.exitCode !== null || kubelet.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => kubelet.once('exit', () => resolve()));
  kubelet.kill('SIGTERM');
  await Promise.race([exited, sleep(20_000, undefined, { ref: false })]);
}

test('the traffic manager through the API server: clear errors, then a port-forward that follows the pod', { timeout: 300_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'pfwd');
  if (cp === null) return;
  const dir = mkdtempSync(join(tmpdir(), 'kt-pfwd-'));
  let kubelet: ChildProcess | null = null;
  try {
    const admin = cp.plane.kubeconfig;

    await t.test('not installed: says to run kubetun install or pass --manager-namespace', async () => {
      const line = await probe(cp, ['locate', admin, NAMESPACE]);
      assert.match(line.error ?? '', /^the traffic manager is not installed in namespace kubetun of https:\/\/198\.18\.0\.1:6443 \(no Service traffic-manager there\): run `kubetun install` \(or pass --manager-namespace\)$/);
    });

    await t.test('an invalid token: the 401 says to log in again', async () => {
      const line = await probe(cp, ['locate', badTokenKubeconfig(admin, dir), NAMESPACE]);
      assert.match(line.error ?? '', /rejected the credentials of kubeconfig user "expired" \(401 Unauthorized\).*log in again/);
    });

    await t.test('a wrong context: the real CLI fails before starting any daemon', async () => {
      const result = await cp.ns.exec('env', [`KUBETUN_RUN_DIR=${join(dir, 'run')}`, process.execPath, MAIN, 'connect', '--kubeconfig', admin, '--context', 'nope']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^kubetun: context "nope" is not in .*admin\.kubeconfig; its contexts are .* \(or pass --manager-url/);
    });

    await t.test('a manager pod that cannot be scheduled: named, with the scheduler\'s reason', async () => {
      const labels = { app: 'unschedulable-manager' };
      await apply(cp, '/api/v1/namespaces', { metadata: { name: 'kubetun-stuck' } });
      await apply(cp, '/api/v1/namespaces/kubetun-stuck/services', {
        metadata: { name: 'traffic-manager' },
        spec: { selector: labels, ports: [{ port: 8081 }] },
      });
      await apply(cp, '/api/v1/namespaces/kubetun-stuck/pods', {
        metadata: { name: 'tm-stuck', labels },
        spec: { nodeSelector: { nowhere: 'true' }, containers: [{ name: 'manager', image: 'kubetun/test-manager' }] },
      });
      const line = await until(() => probe(cp, ['locate', admin, 'kubetun-stuck']), (l) => /scheduled/.test(l.error ?? ''), 20_000);
      // Before a node registers the scheduler says "no nodes available…", after it "0/1 nodes are available: …".
      assert.match(line.error ?? '', /^the traffic manager pod tm-stuck is not ready: it is not scheduled: .*nodes? (are )?available/);
    });

    // From here on pods run: the sandbox kubelet, on a bridge in this namespace.
    for (const args of [['link', 'add', 'ktbr0', 'type', 'bridge'], ['link', 'set', 'ktbr0', 'up']]) {
      const result = await cp.ns.exec('ip', args);
      assert.equal(result.code, 0, result.stderr);
    }
    kubelet = cp.ns.spawn(process.execPath, [
      KUBELET, '--kubeconfig', admin, '--node-name', 'pf-node', '--node-ip', NODE_IP, '--pod-cidr', '10.244.7.0/24',
      '--bridge', 'ktbr0', '--netns-prefix', `ktpf${process.pid % 10_000}-`, '--state-dir', join(dir, 'kubelet'), '--log-level', 'warn',
    ]);
    kubelet.stderr!.on('data', (chunk: Buffer) => t.diagnostic(`kubelet: ${chunk.toString().trim()}`));
    const { deployment, service } = managerObjects();
    await apply(cp, '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
    await apply(cp, `/api/v1/namespaces/${NAMESPACE}/services`, service);
    await apply(cp, `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, deployment);
    await apply(cp, '/api/v1/namespaces/default/pods', {
      metadata: { name: 'web' },
      spec: {
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        containers: [{ name: 'web', image: 'python', command: ['python3', '-m', 'http.server', '8081'], readinessProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1 } }],
      },
    });

    await t.test('a port-forward stream carries an HTTP request to a pod', async () => {
      const line = await until(() => probe(cp, ['http', admin, 'default', 'web', '8081']), (l) => l.response !== undefined, 60_000);
      assert.match(line.response ?? `error: ${line.error}`, /^HTTP\/1\.0 200 OK$/);
    });

    await t.test('a port nothing listens on: the kubelet\'s error ends the stream with its text', async () => {
      const line = await probe(cp, ['http', admin, 'default', 'web', '9']);
      assert.match(line.error ?? `response: ${line.response}`, /^the port-forward to port 9 of pod default\/web failed in the cluster: .+/);
    });

    await t.test('a pod that does not exist: the API server\'s 404 is named', async () => {
      const line = await probe(cp, ['http', admin, 'default', 'no-such-pod', '80']);
      assert.match(line.error ?? '', /^cannot port-forward to port 80 of pod default\/no-such-pod: not found \(404\)/);
    });

    await t.test('the user daemon connects through the kubeconfig and hands the root daemon a socket that reaches the manager', async () => {
      const located = await until(() => probe(cp, ['locate', admin, NAMESPACE]), (l) => l.target !== undefined, 60_000);
      const line = await probe(cp, ['userd', admin, NAMESPACE, join(dir, 'userd')]);
      const config = new KubeConfig();
      config.loadFromFile(admin);
      assert.equal(line.error, undefined);
      assert.equal(line.rootUrl, `unix:${join(dir, 'userd', 'manager-forward.sock')}`);
      assert.equal(line.rootVersion, line.status?.managerVersion);
      assert.deepEqual(
        { ...line.status, sessionId: typeof line.status?.sessionId },
        {
          state: 'connected',
          sessionId: 'string',
          namespace: config.getContextObject(config.getCurrentContext())?.namespace ?? 'default',
          podCidrs: ['10.244.0.0/16'],
          serviceCidrs: ['10.96.0.0/16'],
          managerVersion: line.rootVersion,
          network: { connected: true, tunnel: 'connected' },
          context: config.getCurrentContext(),
          managerNamespace: NAMESPACE,
          managerPod: located.target!.pod,
        },
      );
    });

    await t.test('the manager session: the heartbeat notices a frozen manager, a deleted pod is followed to its replacement', async () => {
      const located = await until(() => probe(cp, ['locate', admin, NAMESPACE]), (l) => l.target !== undefined, 60_000);
      assert.equal(located.target?.port, 8081, JSON.stringify(located));
      const session = cp.ns.spawn(process.execPath, [PROBE, 'session', admin, NAMESPACE, join(dir, 'manager.sock')]);
      const next = lines(session);
      try {
        const first = await next((l) => l.connected !== undefined, 30_000);
        assert.equal(first.connected, located.target!.pod);

        // A stopped process keeps its sockets open: only the heartbeat can tell.
        const pid = await podPid(cp, first.connected!);
        process.kill(pid, 'SIGSTOP');
        const stoppedAt = Date.now();
        try {
          const lost = await next((l) => l.disconnected !== undefined, 10_000);
          const took = Date.now() - stoppedAt;
          assert.match(lost.disconnected!, /heartbeat failed/);
          assert.ok(took <= 5_500, `the frozen manager was noticed after ${took} ms`);
        } finally {
          process.kill(pid, 'SIGCONT');
        }
        const again = await next((l) => l.connected !== undefined, 30_000);
        assert.equal(again.connected, first.connected);

        const [deleted] = await cp.api([{ method: 'DELETE', path: `/api/v1/namespaces/${NAMESPACE}/pods/${first.connected}` }]);
        assert.equal(deleted!.status, 200, deleted!.body);
        await next((l) => l.disconnected !== undefined, 20_000);
        const replaced = await next((l) => l.connected !== undefined, 90_000);
        assert.notEqual(replaced.connected, first.connected, 'the Deployment\'s new pod is reached');
      } finally {
        session.kill('SIGTERM');
      }
    });
  } finally {
    if (kubelet !== null) await stopKubelet(kubelet);
    await cp.destroy();
    await cleanupKubelet(join(dir, 'kubelet')).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
