// kubetun install and connect against the sandbox cluster: the traffic manager deployed through the real API
// server, the session through the API server's port-forward, real daemons, real clients (curl, dig, redis-cli,
// iperf3) in the workstation namespace, which reaches the cluster only through kubetun.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { podsOf, readCluster, sandboxApi, sandboxConfig, sandboxDown, sandboxManagerUser, sandboxUp, workstationCommand, type ClusterPod } from '../../src/sandbox/index.js';
import { findService } from '../../src/sandbox/sandbox-config.js';
import { prefixCovers } from '../../src/net/prefixes.js';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { readControlPlane } from '../../src/sandbox/control-plane/control-plane.js';
import { isAlive } from '../../src/sandbox/processes.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';
import { probeConnections } from '../helpers/connect-probe.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NAME = `ktc${process.pid % 1000}`;
const config = sandboxConfig(NAME);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command in the sandbox's workstation namespace, as `kubetun sandbox exec` would. */
function ws(command: string[], timeoutMs = 30_000): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  const start = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr, ms: performance.now() - start });
    });
  });
}

const kubetun = (...args: string[]): Promise<Run> => ws(['node', KUBETUN, ...args]);

async function noKubetunLeft(): Promise<void> {
  const routes = await ws(['ip', '-j', 'route', 'show', 'table', 'all']);
  assert.doesNotMatch(routes.stdout, /"kt0"/, 'a route through kt0 is left');
  const link = await ws(['ip', 'link', 'show', 'kt0']);
  assert.notEqual(link.code, 0, 'the TUN device kt0 is left');
  const resolv = await ws(['cat', '/etc/resolv.conf']);
  assert.doesNotMatch(resolv.stdout, /kubetun|198\.18\.255\.53/, 'resolv.conf still points at kubetun');
}

async function managerPod(): Promise<ClusterPod | undefined> {
  return podsOf((await readCluster(config)).pods, 'traffic-manager', config.manager.namespace).find((p) => p.ready);
}

// iproute2 takes the family from -4/-6, not from the prefix.
const routedThroughKubetun = async (cidr: string): Promise<boolean> => (await ws(['ip', cidr.includes(':') ? '-6' : '-4', 'route', 'show', cidr])).stdout.includes('kt0');

async function waitForRoute(cidr: string, present: boolean, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 5 && (await routedThroughKubetun(cidr)) !== present; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await routedThroughKubetun(cidr), present, `${cidr} ${present ? 'not routed' : 'still routed'} after ${seconds} s`);
}

/** Adds a Node (no kubelet) with new pod CIDRs, waits (up to `seconds`) for the client to route them, deletes it, and for the routes to go. */
async function nodeComesAndGoes(name: string, podCidrs: [string, ...string[]], seconds = 10): Promise<void> {
  const node = { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: podCidrs[0], podCIDRs: podCidrs } };
  const [created] = await sandboxApi(config, [{ method: 'POST', path: '/api/v1/nodes', body: node }]);
  assert.equal(created?.status, 201, created?.body);
  try {
    for (const cidr of podCidrs) await waitForRoute(cidr, true, seconds);
  } finally {
    await sandboxApi(config, [{ method: 'DELETE', path: `/api/v1/nodes/${name}` }]);
  }
  for (const cidr of podCidrs) await waitForRoute(cidr, false, seconds);
}

/** Sets the manager Deployment's replicas; with 0, returns once no pod of it is left. */
async function scaleManager(replicas: number): Promise<void> {
  const name = 'traffic-manager';
  const scale = { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: config.manager.namespace }, spec: { replicas } };
  const [answer] = await sandboxApi(config, [{ method: 'PUT', path: `/apis/apps/v1/namespaces/${config.manager.namespace}/deployments/${name}/scale`, body: scale }]);
  assert.equal(answer?.status, 200, answer?.body);
  if (replicas > 0) return;
  for (let i = 0; i < 100 && podsOf((await readCluster(config)).pods, name, config.manager.namespace).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(podsOf((await readCluster(config)).pods, name, config.manager.namespace).length, 0, 'the manager pod is still there 20 s after scaling to 0');
}

describe('kubetun install and connect to the sandbox cluster', { skip: controlPlaneSkipReason() ?? false }, () => {
  let echoPods: ClusterPod[] = [];

  before(async () => {
    await sandboxUp(NAME);
    const installed = await kubetun('install');
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    const connected = await kubetun('connect');
    assert.equal(connected.code, 0, connected.stderr);
    echoPods = podsOf((await readCluster(config)).pods, 'echo');
  });

  after(async () => {
    await kubetun('quit');
    await sandboxDown(NAME);
  });

  test('the manager was installed through the API: its Deployment runs a ready pod in its namespace', async () => {
    const pod = await managerPod();
    assert.ok(pod !== undefined, 'no ready traffic-manager pod');
    assert.match(pod.name, /^traffic-manager-/);
  });

  for (const url of ['http://echo', 'http://echo.default', 'http://echo.default.svc.cluster.local', 'http://10.96.0.20', 'http://[fd10:96::14]', 'http://orders.shop']) {
    test(`curl ${url}`, async () => {
      const r = await ws(['curl', '-sS', '-m', '5', url]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pod: (echo|orders)-/m);
    });
  }

  test('curl each echo pod by its pod IP, IPv4 and IPv6, on both nodes', async () => {
    for (const pod of echoPods) {
      for (const url of [`http://${pod.ipv4}`, `http://[${pod.ipv6}]`]) {
        const r = await ws(['curl', '-sS', '-m', '5', '-g', url]);
        assert.equal(r.code, 0, `${url}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^pod: ${pod.name}$`, 'm'));
      }
    }
  });

  test('the echo service balances across both replicas', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 30 && pods.size < 2; i++) {
      const r = await ws(['curl', '-sS', '-m', '5', 'http://echo.default']);
      pods.add(/^pod: (\S+)/m.exec(r.stdout)?.[1] ?? '');
    }
    assert.equal(pods.size, 2, [...pods].join(','));
  });

  test('dig A, AAAA and SRV over UDP and TCP', async () => {
    const a = await ws(['dig', '+short', 'echo.default.svc.cluster.local']);
    assert.equal(a.stdout.trim(), '10.96.0.20');
    const aaaa = await ws(['dig', '+short', '+tcp', 'AAAA', 'echo.default.svc.cluster.local']);
    assert.equal(aaaa.stdout.trim(), 'fd10:96::14');
    const srv = await ws(['dig', '+short', 'SRV', '_http._tcp.echo.default.svc.cluster.local']);
    assert.match(srv.stdout, /80 echo\.default\.svc\.cluster\.local\./);
    const short = await ws(['dig', '+short', '+search', 'redis']);
    assert.equal(short.stdout.trim(), '10.96.0.21');
  });

  test('a non-cluster name still resolves through the original upstream', async () => {
    const r = await ws(['dig', '+short', 'www.upstream.test']);
    assert.equal(r.stdout.trim(), '198.18.0.1');
  });

  test('an unknown cluster name is NXDOMAIN, fast', async () => {
    const r = await ws(['dig', 'nope.default.svc.cluster.local']);
    assert.match(r.stdout, /status: NXDOMAIN/);
    assert.ok(r.ms < 1500, `took ${r.ms} ms`);
  });

  test('redis-cli SET and GET through the service name', async () => {
    assert.equal((await ws(['redis-cli', '-h', 'redis', 'SET', 'kubetun', 'works'])).stdout.trim(), 'OK');
    assert.equal((await ws(['redis-cli', '-h', 'redis.default', 'GET', 'kubetun'])).stdout.trim(), 'works');
  });

  test('iperf3 TCP both ways and UDP', async () => {
    type Iperf = { end: { sum_received?: { bytes: number }; sum?: { bytes: number } }; error?: string };
    for (const extra of [[], ['-R'], ['-u', '-b', '50M']]) {
      let result: Iperf | undefined;
      // The iperf3 server runs one test at a time and may still be finishing the previous one: it then says so
      // (and exits 0) instead of running this one.
      for (let attempt = 0; attempt < 20 && (result === undefined || /server is busy/.test(result.error ?? '')); attempt++) {
        if (result !== undefined) await new Promise((r) => setTimeout(r, 250));
        const r = await ws(['iperf3', '-c', 'iperf', '-t', '1', '-J', ...extra], 30_000);
        assert.equal(r.code, 0, r.stderr + r.stdout.slice(0, 500));
        result = JSON.parse(r.stdout) as Iperf;
      }
      assert.ok(result !== undefined);
      const bytes = result.end.sum_received?.bytes ?? result.end.sum?.bytes ?? 0;
      assert.ok(bytes > 0, `iperf3 ${extra.join(' ')} moved no bytes: ${result.error ?? JSON.stringify(result.end).slice(0, 800)}`);
    }
  });

  test('a closed port is "connection refused" at once', async () => {
    const r = await ws(['curl', '-sS', '-m', '5', `http://${echoPods[0]!.ipv4}:81`]);
    assert.equal(r.code, 7, r.stderr);
    assert.ok(r.ms < 1000, `took ${r.ms} ms`);
  });

  test('a port the echo Service does not define is "connection refused" at once, IPv4 and IPv6', async () => {
    const echo = findService(config, 'echo')!;
    const targets = [echo.clusterIPs.ipv4, echo.clusterIPs.ipv6].map((host) => ({ protocol: 'tcp' as const, host, port: 81 }));
    const outcomes = await probeConnections((cmd, args) => ws([cmd, ...args]), targets, 2_000);
    for (const [i, o] of outcomes.entries()) {
      assert.equal(o.outcome, 'ECONNREFUSED', targets[i]!.host);
      assert.ok(o.ms < 300, `${targets[i]!.host} port 81 refused after ${o.ms} ms`);
    }
  });

  test('version names the client, the user daemon and the manager', async () => {
    const r = await kubetun('version');
    assert.match(r.stdout, /Client: +kubetun \d+\.\d+\.\d+/);
    assert.match(r.stdout, /User daemon: +kubetun \d+/);
    assert.match(r.stdout, /Traffic manager: +\d+\.\d+\.\d+/);
  });

  test('status shows the session, routes, DNS and counters; --output json too', async () => {
    let text = await kubetun('status');
    // The flow connections beside the main one open once the session is up (a port-forward each).
    for (let i = 0; i < 50 && !/4 connections carrying flows/.test(text.stdout); i++) {
      await new Promise((r) => setTimeout(r, 200));
      text = await kubetun('status');
    }
    assert.match(text.stdout, /Status: +connected/);
    assert.match(text.stdout, /Device: +kt0 \(tunnel connected, 4 connections carrying flows\)/);
    // Discovered from the API: the service range from the API server's own answer, the pod CIDRs from the nodes.
    assert.match(text.stdout, /Routes: +.*10\.96\.0\.0\/16/);
    const json = JSON.parse((await kubetun('status', '--output', 'json')).stdout) as { state: string; network: { routes: string[] } };
    assert.equal(json.state, 'connected');
    for (const cidr of config.nodes.flatMap((n) => n.podCidrs)) {
      assert.ok(json.network.routes.some((r) => prefixCovers(parsePrefix(r), parsePrefix(cidr))), `${cidr} routed by one of ${json.network.routes.join(', ')}`);
    }
  });

  test('a third node with a new pod CIDR is routed within seconds, and withdrawn when it goes', async () => {
    await nodeComesAndGoes('node-3', ['10.244.2.0/24', 'fd10:244:0:2::/64']);
    assert.match((await ws(['ip', 'route', 'get', echoPods[0]!.ipv4])).stdout, /dev kt0/, 'the other nodes stay routed');
  });

  test('the API server restarts: the session comes back by itself and discovery still follows the nodes', async () => {
    const apiserver = readControlPlane(config.controlPlane.stateDir)?.processes.find((p) => p.id === 'kube-apiserver');
    assert.ok(apiserver !== undefined, 'no kube-apiserver recorded');
    // Every watch and the port-forward die with it; `sandbox up` then restarts the control plane on the same etcd data.
    process.kill(apiserver.pid, 'SIGKILL');
    for (let i = 0; i < 50 && isAlive(apiserver); i++) await new Promise((r) => setTimeout(r, 100));
    await sandboxUp(NAME);
    let status = '';
    for (let i = 0; i < 60; i++) {
      status = (await kubetun('status')).stdout;
      if (/Status: +connected/.test(status) && (await ws(['curl', '-sS', '-m', '2', 'http://echo.default'])).code === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(status, /Status: +connected/);
    // The manager's informers may be in a backoff of up to 16 s by now (500 ms doubling while the server was away).
    await nodeComesAndGoes('node-4', ['10.244.3.0/24', 'fd10:244:0:3::/64'], 40);
  });

  test('quit, then kill -9 of both daemons, leave no route, device or DNS change behind', async () => {
    assert.equal((await kubetun('quit')).code, 0);
    await noKubetunLeft();
    assert.equal((await kubetun('connect')).code, 0);
    await ws(['pkill', '-9', '-f', `${KUBETUN} (root|user)-daemon`]);
    await new Promise((r) => setTimeout(r, 300));
    // The device and its routes die with the process; resolv.conf is repaired by the next start.
    const again = await kubetun('connect');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://echo'])).code, 0);
    assert.equal((await kubetun('quit')).code, 0);
    await noKubetunLeft();
  });

  test('SIGTERM to the root daemon restores everything; connect brings the network back', async () => {
    assert.equal((await kubetun('connect')).code, 0);
    const pids = (await ws(['ip', 'netns', 'pids', config.namespaces.workstation])).stdout.split('\n').filter(Boolean);
    let rootd = 0;
    for (const pid of pids) if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('root-daemon')) rootd = Number(pid);
    assert.ok(rootd > 0, 'no root daemon found');
    process.kill(rootd, 'SIGTERM');
    for (let i = 0; i < 50 && (await readFile(`/proc/${rootd}/cmdline`).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    await noKubetunLeft();
    const again = await kubetun('connect');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://echo'])).code, 0);
  });

  test('when the manager pod is deleted, its Deployment brings a new one and the session comes back by itself', async () => {
    const old = await managerPod();
    assert.ok(old !== undefined, 'the manager is not running');
    const [deleted] = await sandboxApi(config, [{ method: 'DELETE', path: `/api/v1/namespaces/${config.manager.namespace}/pods/${old.name}` }]);
    assert.equal(deleted?.status, 200, deleted?.body);
    // Done only when the session runs through the new pod: until the kubelet stops the old one, curl may still
    // succeed through the old forward while no pod is ready, and that proves nothing.
    let status = '';
    for (let i = 0; i < 60; i++) {
      const fresh = await managerPod();
      status = (await kubetun('status')).stdout;
      const through = fresh !== undefined && fresh.name !== old.name && /Status: +connected/.test(status) && status.includes(`pod ${config.manager.namespace}/${fresh.name} `);
      if (through && (await ws(['curl', '-sS', '-m', '2', 'http://echo.default'])).code === 0) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`echo not reachable through a new manager pod within 30 s; the old one was ${old.name}; status:\n${status}`);
  });

  test('connect waits for a manager pod that is not ready yet (a rollout), then connects', async () => {
    await kubetun('quit');
    await scaleManager(0);
    try {
      const connecting = kubetun('connect');
      await new Promise((r) => setTimeout(r, 1500));
      await scaleManager(1);
      const r = await connecting;
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://echo.default'])).code, 0);
    } finally {
      await scaleManager(1);
    }
  });

  test('a manager that has no ready pod within --manager-timeout is a clear error, and nothing is left behind', async () => {
    await kubetun('quit');
    await scaleManager(0);
    try {
      const r = await kubetun('connect', '--manager-timeout', '2');
      assert.notEqual(r.code, 0);
      // The scaled-down pod may still be terminating: then it is named as being deleted.
      assert.match(r.stderr, /(no traffic manager pod in namespace kubetun matches the selector .*|the traffic manager pod \S+ is not ready: it is being deleted) \(waited 2 s; --manager-timeout sets how long\)/);
      assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
      await noKubetunLeft();
    } finally {
      await scaleManager(1);
    }
    const again = await kubetun('connect');
    assert.equal(again.code, 0, again.stderr);
  });

  test('--manager-url reaches a manager exposed directly (its TLS NodePort) as a user allowed to port-forward to it', async () => {
    await kubetun('quit');
    const installed = await kubetun('install', '--tls-secret', config.manager.tlsSecret);
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    const user = await sandboxManagerUser(config, 'connect-test', true);
    try {
      const r = await kubetun('connect', '--manager-url', config.manager.url, '--manager-ca', config.manager.caFile, '--kubeconfig', user.kubeconfig);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://orders.shop'])).code, 0);
    } finally {
      await kubetun('quit');
    }
    assert.equal((await kubetun('connect')).code, 0);
  });

  test('a cluster subnet that overlaps a local route is refused with both named and the flags to use', async () => {
    await kubetun('quit');
    await ws(['ip', 'route', 'add', '10.96.0.0/20', 'dev', 'eth0']);
    try {
      const r = await kubetun('connect');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /10\.96\.0\.0\/16 overlaps the local route 10\.96\.0\.0\/20/);
      assert.match(r.stderr, /--allow-conflicting-subnets/);
      await noKubetunLeft();
      const allowed = await kubetun('connect', '--allow-conflicting-subnets', '10.96.0.0/16');
      assert.equal(allowed.code, 0, allowed.stderr);
    } finally {
      await kubetun('quit');
      await ws(['ip', 'route', 'del', '10.96.0.0/20', 'dev', 'eth0']);
    }
  });

  test('uninstall removes everything; connect then says the manager is not installed and how to install it', async () => {
    await kubetun('quit');
    const removed = await kubetun('uninstall');
    assert.equal(removed.code, 0, removed.stderr);
    const [namespace] = await sandboxApi(config, [{ method: 'GET', path: `/api/v1/namespaces/${config.manager.namespace}` }]);
    assert.equal(namespace?.status, 404, 'the namespace is gone');
    const [roles] = await sandboxApi(config, [{ method: 'GET', path: '/apis/rbac.authorization.k8s.io/v1/clusterroles?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkubetun' }]);
    assert.deepEqual((JSON.parse(roles!.body) as { items: unknown[] }).items, []);
    const r = await kubetun('connect');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /kubetun install/);
    await noKubetunLeft();
  });
});
