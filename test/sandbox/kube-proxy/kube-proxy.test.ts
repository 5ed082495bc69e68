// kube-proxy against a real API server: a selector-less Service and hand-made Endpoints lead to real servers on
// addresses of the test namespace; curl in that namespace goes through the output hook's DNAT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { kubeProxyRules } from '../../../src/sandbox/kube-proxy/rbac.js';
import { serviceAccountKubeconfig } from '../cluster-dns/service-account.js';
import { probeConnections } from '../../helpers/connect-probe.js';
import { startTestControlPlane, TEST_API_ADDRESS, type TestControlPlane } from '../../helpers/control-plane.js';

const PROGRAM = fileURLToPath(new URL('../../../src/sandbox/kube-proxy/main.js', import.meta.url));
const TABLE = 'kt_proxy_test';
const CLUSTER_IP = '10.96.0.123';

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last === undefined ? '' : ` (${String(last)})`}`);
    await sleep(200);
  }
}

function endpoints(ips: string[]): object {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'web', namespace: 'default' },
    subsets: ips.length === 0 ? [] : [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
  };
}

async function api(cp: TestControlPlane, method: 'POST' | 'PUT', path: string, body: object, expected: number): Promise<void> {
  const [response] = await cp.api([{ method, path, body }]);
  assert.equal(response?.status, expected, response?.body);
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

test('kube-proxy routes a ClusterIP and a NodePort to the endpoints in the API, follows changes, removes its table on SIGTERM', { timeout: 180_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'kproxy');
  if (cp === null) return;
  const { ns } = cp;
  const webroot = mkdtempSync(join(tmpdir(), 'kt-kproxy-'));
  try {
    // Two "pods": HTTP servers on addresses of lo, each saying who it is.
    for (const [i, ip] of ['10.244.0.50', '10.244.0.51'].entries()) {
      assert.equal((await ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo'])).code, 0);
      const dir = join(webroot, String(i));
      mkdirSync(dir);
      writeFileSync(join(dir, 'who'), `server-${i}\n`);
      ns.spawn('python3', ['-m', 'http.server', '8080', '--bind', ip, '--directory', dir]);
    }
    // A local process's first route lookup needs a route for the service range before DNAT rewrites it.
    for (const args of [
      ['link', 'add', 'ktsvc0', 'type', 'veth', 'peer', 'name', 'ktsvc1'],
      ['link', 'set', 'ktsvc0', 'up'],
      ['link', 'set', 'ktsvc1', 'up'],
      ['route', 'add', '10.96.0.0/16', 'dev', 'ktsvc0'],
    ]) {
      const r = await ns.exec('ip', args);
      assert.equal(r.code, 0, r.stderr);
    }
    await api(cp, 'POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { type: 'NodePort', clusterIP: CLUSTER_IP, ports: [{ name: 'http', port: 80, targetPort: 'web', nodePort: 30080, protocol: 'TCP' }] },
    }, 201);
    await api(cp, 'POST', '/api/v1/namespaces/default/endpoints', endpoints(['10.244.0.50']), 201);

    // Its own ServiceAccount with the published rules only: they must be all it needs.
    const kubeconfig = join(webroot, 'kube-proxy.kubeconfig');
    await serviceAccountKubeconfig(cp, 'kube-proxy', kubeProxyRules, kubeconfig);
    const proxy = ns.spawn(process.execPath, [PROGRAM, '--kubeconfig', kubeconfig, '--table', TABLE, '--node-address', TEST_API_ADDRESS, '--service-cidr', '10.96.0.0/16']);
    let log = '';
    proxy.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    const curl = async (url: string): Promise<{ code: number; out: string; ms: number }> => {
      const started = Date.now();
      const r = await ns.exec('curl', ['-sS', '-m', '3', url]);
      return { code: r.code, out: r.stdout.trim(), ms: Date.now() - started };
    };

    const first = await eventually('the ClusterIP answers', 30_000, async () => ((await curl(`http://${CLUSTER_IP}/who`)).out === 'server-0' ? true : undefined));
    assert.ok(first, log);
    assert.equal((await curl(`http://${TEST_API_ADDRESS}:30080/who`)).out, 'server-0', 'the NodePort on the node address');
    // The kubernetes Service: 443 → the API server's endpoint, a local address.
    const version = await ns.exec('curl', ['-sk', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', 'https://10.96.0.1/version']);
    assert.match(version.stdout, /^[1-5]\d\d$/, `kubernetes Service: ${version.stdout} ${version.stderr}`);
    // A port the Service does not define is refused at once; an address no Service holds is dropped.
    const [undefinedPort, unallocated] = await probeConnections((cmd, args) => ns.exec(cmd, args), [
      { protocol: 'tcp', host: CLUSTER_IP, port: 81 },
      { protocol: 'tcp', host: '10.96.0.124', port: 80 },
    ], 1_000);
    assert.equal(undefinedPort?.outcome, 'ECONNREFUSED', log);
    assert.ok(undefinedPort.ms < 300, `refused after ${undefinedPort.ms} ms`);
    assert.equal(unallocated?.outcome, 'timeout');

    await api(cp, 'PUT', '/api/v1/namespaces/default/endpoints/web', endpoints([]), 200);
    const refused = await eventually('no endpoints: refused', 10_000, async () => {
      const r = await curl(`http://${CLUSTER_IP}/who`);
      return r.code === 7 ? r : undefined; // curl: failed to connect
    });
    assert.ok(refused.ms < 1_000, `refused after ${refused.ms} ms, not at once`);

    await api(cp, 'PUT', '/api/v1/namespaces/default/endpoints/web', endpoints(['10.244.0.51']), 200);
    const started = Date.now();
    await eventually('the new endpoint answers', 10_000, async () => ((await curl(`http://${CLUSTER_IP}/who`)).out === 'server-1' ? true : undefined));
    assert.ok(Date.now() - started < 5_000);

    assert.equal((await ns.exec('nft', ['list', 'table', 'inet', TABLE])).code, 0);
    proxy.kill('SIGTERM');
    assert.equal(await exited(proxy), 0, log);
    const listed = await ns.exec('nft', ['list', 'table', 'inet', TABLE]);
    assert.notEqual(listed.code, 0, 'the table is gone after stop');
  } finally {
    await cp.destroy();
    rmSync(webroot, { recursive: true, force: true });
  }
});
