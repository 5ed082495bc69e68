// End to end on a real control plane (kube-apiserver v1.20 in a test namespace): the real `kubetun
// traffic-manager` discovers the pod CIDRs from Node objects (and follows a new node), the service CIDR by the
// invalid-ClusterIP probe and the DNS server from kube-dns; with a service account that may not list nodes, auto
// falls back to covering pod IPs (and ClusterIPs, since it may not create services either) and nodePodCIDRs fails
// with the missing permission named. A watcher program in the namespace reads WatchClusterInfo.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { ApiRequest } from '../../../src/sandbox/control-plane/api-request.js';
import { startTestControlPlane, type TestControlPlane } from '../../helpers/control-plane.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const WATCHER = fileURLToPath(new URL('./cluster-info-watcher.js', import.meta.url));

interface Info {
  podCidrs: string[];
  serviceCidrs: string[];
  dnsServer: string;
  clusterDomain: string;
  revision: number;
}

/** Sends one request, retrying while the control plane is still settling (e.g. default service accounts). */
async function call(cp: TestControlPlane, request: ApiRequest, timeoutMs = 30_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [answer] = await cp.api([request]);
    if (answer!.status >= 200 && answer!.status < 300) return JSON.parse(answer!.body);
    if (Date.now() > deadline) assert.fail(`${request.method} ${request.path}: ${answer!.status} ${answer!.body}`);
    await sleep(300);
  }
}

const nodeObject = (name: string, cidr: string): object => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  spec: { podCIDR: cidr, podCIDRs: [cidr] },
});

/** A pod bound to node-a (no kubelet runs: its IP is written into its status as a kubelet would). */
async function createPod(cp: TestControlPlane, namespace: string, name: string, ip: string, hostNetwork = false): Promise<void> {
  const base = `/api/v1/namespaces/${namespace}/pods`;
  await call(cp, {
    method: 'POST',
    path: base,
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace },
      spec: { nodeName: 'node-a', hostNetwork, containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
    },
  });
  const pod = (await call(cp, { method: 'GET', path: `${base}/${name}` })) as { status?: Record<string, unknown> };
  pod.status = { ...pod.status, phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '192.168.77.7' };
  await call(cp, { method: 'PUT', path: `${base}/${name}/status`, body: pod });
}

interface Manager {
  child: ChildProcess;
  logs: string[];
  waitLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

async function until<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  createInterface({ input: stream }).on('line', (line) => into.push(line));
}

async function startManager(cp: TestControlPlane, port: number, args: string[], env: string[] = []): Promise<Manager> {
  // `env` execs node, so the pid ns.spawn knows is the manager's.
  const child = cp.ns.spawn('env', [...env, process.execPath, MAIN, 'traffic-manager', '--listen', `127.0.0.1:${port}`, ...args]);
  const logs: string[] = [];
  collectLines(child.stderr!, logs);
  const manager: Manager = {
    child,
    logs,
    waitLog: (pattern, timeoutMs = 30_000) => until(`a log line matching ${pattern}\n${logs.join('\n')}`, timeoutMs, () => logs.find((l) => pattern.test(l))),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
  return manager;
}

function startWatcher(cp: TestControlPlane, port: number): { infos: Info[]; child: ChildProcess } {
  const child = cp.ns.spawn(process.execPath, [WATCHER, `http://127.0.0.1:${port}`]);
  const infos: Info[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => infos.push(JSON.parse(line) as Info));
  return { infos, child };
}

const waitInfo = (infos: Info[], what: string, check: (info: Info) => boolean, timeoutMs = 10_000): Promise<Info> =>
  until(`${what}; got ${JSON.stringify(infos)}`, timeoutMs, () => infos.find(check));

const same = (a: string[], b: string[]): boolean => JSON.stringify(a) === JSON.stringify(b);

/** A kubeconfig for a service account that may read pods and services, but not nodes, and create nothing. */
async function limitedKubeconfig(cp: TestControlPlane): Promise<string> {
  await call(cp, { method: 'POST', path: '/api/v1/namespaces/default/serviceaccounts', body: { metadata: { name: 'limited' } } });
  await call(cp, {
    method: 'POST',
    path: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    body: {
      metadata: { name: 'kubetun-limited' },
      rules: [{ apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] }],
    },
  });
  await call(cp, {
    method: 'POST',
    path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    body: {
      metadata: { name: 'kubetun-limited' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kubetun-limited' },
      subjects: [{ kind: 'ServiceAccount', name: 'limited', namespace: 'default' }],
    },
  });
  // The tokens controller adds a token Secret to the service account.
  let token: string | undefined;
  const deadline = Date.now() + 30_000;
  while (token === undefined) {
    const sa = (await call(cp, { method: 'GET', path: '/api/v1/namespaces/default/serviceaccounts/limited' })) as { secrets?: { name: string }[] };
    const name = sa.secrets?.[0]?.name;
    if (name !== undefined) {
      const secret = (await call(cp, { method: 'GET', path: `/api/v1/namespaces/default/secrets/${name}` })) as { data?: { token?: string } };
      if (secret.data?.token) token = Buffer.from(secret.data.token, 'base64').toString('utf8');
    }
    if (token === undefined) {
      if (Date.now() > deadline) assert.fail('the tokens controller made no token for the limited service account');
      await sleep(300);
    }
  }
  const file = join(cp.stateDir, 'limited.kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cp.plane.server, 'certificate-authority': cp.plane.admin.caFile } }],
    users: [{ name: 'limited', user: { token } }],
    contexts: [{ name: 'limited', context: { cluster: 'test', user: 'limited' } }],
    'current-context': 'limited',
  };
  writeFileSync(file, JSON.stringify(config));
  return file;
}

test('discovery on a real control plane: node CIDRs followed, service CIDR probed; limited RBAC falls back', { timeout: 240_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'disc');
  if (cp === null) return;
  const started: { stop(): Promise<void> }[] = [];
  try {
    assert.equal(cp.plane.serviceClusterIpRange, '10.96.0.0/16');
    await call(cp, { method: 'POST', path: '/api/v1/nodes', body: nodeObject('node-a', '10.244.0.0/24') });
    await call(cp, {
      method: 'POST',
      path: '/api/v1/namespaces/kube-system/services',
      body: {
        metadata: { name: 'kube-dns', namespace: 'kube-system' },
        spec: { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] },
      },
    });

    await t.test('admin, auto: node podCIDRs (holding POD_IP), probed service CIDR, kube-dns; a new node is pushed', async () => {
      const manager = await startManager(cp, 18081, ['--kubeconfig', cp.plane.kubeconfig], ['POD_IP=10.244.0.7']);
      started.push(manager);
      await manager.waitLog(/traffic manager listening/, 60_000);
      await manager.waitLog(/service CIDRs found by the invalid-ClusterIP probe/, 1);
      const watcher = startWatcher(cp, 18081);
      started.push({ stop: async () => void watcher.child.stdin!.end() });
      const first = await waitInfo(watcher.infos, 'the first ClusterInfo', () => true);
      assert.deepEqual(first.podCidrs, ['10.244.0.0/24']);
      assert.deepEqual(first.serviceCidrs, ['10.96.0.0/16']);
      assert.equal(first.dnsServer, '10.96.0.10');

      const added = Date.now();
      await call(cp, { method: 'POST', path: '/api/v1/nodes', body: nodeObject('node-b', '10.244.1.0/24') });
      await waitInfo(watcher.infos, 'the pod CIDRs with node-b', (i) => same(i.podCidrs, ['10.244.0.0/23']), 5_000);
      t.diagnostic(`a new node's podCIDR reached the client in ${Date.now() - added} ms`);
      await call(cp, { method: 'POST', path: '/api/v1/nodes', body: nodeObject('node-c', '10.250.0.0/24') });
      await waitInfo(watcher.infos, 'the pod CIDRs with node-c', (i) => same(i.podCidrs, ['10.244.0.0/23', '10.250.0.0/24']), 5_000);
      await call(cp, { method: 'DELETE', path: '/api/v1/nodes/node-c' });
      const last = await waitInfo(watcher.infos, 'the pod CIDRs without node-c', (i) => i.revision > first.revision + 1 && same(i.podCidrs, ['10.244.0.0/23']), 5_000);
      assert.deepEqual(last.serviceCidrs, ['10.96.0.0/16']);

      // The probe's Service was refused: no Service but the two made here exists.
      const services = (await call(cp, { method: 'GET', path: '/api/v1/services' })) as { items: { metadata: { name: string } }[] };
      assert.deepEqual(services.items.map((s) => s.metadata.name).sort(), ['kube-dns', 'kubernetes']);
      await manager.stop();
      assert.equal(manager.child.exitCode, 0);
    });

    await t.test('a service account that may not list nodes: auto covers pod IPs, then follows a new pod', async () => {
      const kubeconfig = await limitedKubeconfig(cp);
      await createPod(cp, 'default', 'web', '10.88.1.5');
      await createPod(cp, 'default', 'db', '10.88.2.6');
      await createPod(cp, 'default', 'exporter', '192.168.77.7', true);
      await createPod(cp, 'kube-system', 'coredns', '10.99.0.2');
      const manager = await startManager(cp, 18082, ['--kubeconfig', kubeconfig]);
      started.push(manager);
      await manager.waitLog(/traffic manager listening/, 60_000);
      assert.ok(manager.logs.some((l) => /"level":"warn".*listing nodes is forbidden; the auto pod CIDR strategy falls back to coverPodIPs/.test(l)));
      const watcher = startWatcher(cp, 18082);
      started.push({ stop: async () => void watcher.child.stdin!.end() });
      const first = await waitInfo(watcher.infos, 'the first ClusterInfo', () => true);
      assert.deepEqual(first.podCidrs, ['10.88.0.0/22']);
      // It may not create the probe Service either: the ClusterIPs in use are covered instead.
      assert.deepEqual(first.serviceCidrs, ['10.96.0.0/24']);
      await createPod(cp, 'default', 'cache', '10.89.0.9');
      await waitInfo(watcher.infos, 'the pod CIDRs with the new pod', (i) => same(i.podCidrs, ['10.88.0.0/22', '10.89.0.0/24']), 5_000);
      await manager.stop();

      const strict = await cp.ns.exec(process.execPath, [MAIN, 'traffic-manager', '--listen', '127.0.0.1:18083', '--kubeconfig', kubeconfig, '--pod-cidr-strategy', 'nodePodCIDRs'], {
        timeoutMs: 30_000,
      });
      assert.equal(strict.code, 1, strict.stderr);
      assert.match(strict.stderr, /nodePodCIDRs: listing nodes is forbidden \(403\).*\\"list\\" and \\"watch\\" on nodes/);
    });
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await cp.destroy();
  }
});
