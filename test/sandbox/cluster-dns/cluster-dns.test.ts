// The cluster DNS against a real API server, queried with dig inside the test namespace over UDP and TCP, with a
// dnsmasq upstream for the names it forwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestControlPlane, type TestControlPlane } from '../../helpers/control-plane.js';
import type { TestNetns } from '../../helpers/netns.js';
import { clusterDnsRules } from '../../../src/sandbox/cluster-dns/rbac.js';
import { serviceAccountKubeconfig } from './service-account.js';

const PROGRAM = fileURLToPath(new URL('../../../src/sandbox/cluster-dns/main.js', import.meta.url));
const DNS = '198.18.0.53';
const DNS6 = '2001:2::53';
const UPSTREAM = '198.18.0.54';

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

interface Dig {
  status: string;
  answers: string[];
  authority: string[];
}

/** dig's sections as lines of `name ttl class type data`. */
async function dig(ns: TestNetns, server: string, args: string[], tcp = false): Promise<Dig> {
  const r = await ns.exec('dig', [`@${server}`, '+tries=1', '+time=3', ...(tcp ? ['+tcp'] : []), ...args]);
  const section = (title: string): string[] => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(r.stdout);
    return m === null ? [] : m[1]!.split('\n').map((l) => l.split(/\s+/).join(' '));
  };
  return { status: /status: (\w+)/.exec(r.stdout)?.[1] ?? `no answer: ${r.stdout}${r.stderr}`, answers: section('ANSWER'), authority: section('AUTHORITY') };
}

async function create(cp: TestControlPlane, path: string, body: object): Promise<void> {
  const [response] = await cp.api([{ method: 'POST', path, body }]);
  assert.equal(response?.status, 201, response?.body);
}

test('the cluster DNS answers from the API over UDP and TCP, forwards the rest, follows new services', { timeout: 180_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'cdns');
  if (cp === null) return;
  const { ns } = cp;
  const dir = mkdtempSync(join(tmpdir(), 'kt-cdns-'));
  try {
    for (const address of [`${DNS}/32`, `${UPSTREAM}/32`]) assert.equal((await ns.exec('ip', ['addr', 'add', address, 'dev', 'lo'])).code, 0);
    assert.equal((await ns.exec('ip', ['-6', 'addr', 'add', `${DNS6}/128`, 'dev', 'lo'])).code, 0);
    const conf = join(dir, 'upstream.conf');
    writeFileSync(
      conf,
      ['port=53', 'no-resolv', 'no-hosts', 'bind-interfaces', `listen-address=${UPSTREAM}`, 'local=/#/', 'host-record=www.upstream.test,198.18.0.80', 'log-facility=-', 'pid-file=', ''].join('\n'),
    );
    ns.spawn('dnsmasq', ['--keep-in-foreground', `--conf-file=${conf}`]);

    await create(cp, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await create(cp, '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'echo' },
      spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    await create(cp, '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db' },
      spec: { clusterIP: 'None', ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] },
    });
    await create(cp, '/api/v1/namespaces/shop/endpoints', {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'db' },
      subsets: [{ addresses: [{ ip: '10.244.0.31', hostname: 'db-0' }, { ip: 'fd10:244::32' }], ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] }],
    });
    await create(cp, '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'www' },
      spec: { type: 'ExternalName', externalName: 'www.upstream.test' },
    });
    await create(cp, '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'alias' },
      spec: { type: 'ExternalName', externalName: 'echo.default.svc.cluster.local' },
    });
    // No kubelet here: the pod's address is set through its status, as a kubelet would.
    await create(cp, '/api/v1/namespaces/default/pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { containers: [{ name: 'web', image: 'web' }] },
    });
    const [current] = await cp.api([{ method: 'GET', path: '/api/v1/namespaces/default/pods/web' }]);
    const pod = JSON.parse(current!.body) as { status?: object };
    pod.status = { ...pod.status, podIP: '10.244.0.77', podIPs: [{ ip: '10.244.0.77' }] };
    const [put] = await cp.api([{ method: 'PUT', path: '/api/v1/namespaces/default/pods/web/status', body: pod }]);
    assert.equal(put?.status, 200, put?.body);

    // Its own ServiceAccount with the published rules only: they must be all it needs.
    const kubeconfig = join(dir, 'cluster-dns.kubeconfig');
    await serviceAccountKubeconfig(cp, 'cluster-dns', clusterDnsRules, kubeconfig);
    const server = ns.spawn(process.execPath, [PROGRAM, '--kubeconfig', kubeconfig, '--listen', DNS, '--listen', DNS6, '--upstream', UPSTREAM]);
    let log = '';
    server.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    await eventually('the first answer', 30_000, async () => {
      if (server.exitCode !== null) throw new Error(`cluster-dns exited with ${server.exitCode}`);
      const r = await dig(ns, DNS, ['echo.default.svc.cluster.local', 'A']);
      return r.answers.length > 0 ? r : undefined;
    }).catch((error: Error) => assert.fail(`${error.message}\n${log}`));

    for (const tcp of [false, true]) {
      const how = tcp ? 'TCP' : 'UDP';
      const a = await dig(ns, DNS, ['echo.default.svc.cluster.local', 'A'], tcp);
      assert.deepEqual(a.answers, ['echo.default.svc.cluster.local. 30 IN A 10.96.0.20'], how);
      const kubernetes = await dig(ns, DNS, ['kubernetes.default.svc.cluster.local', 'A'], tcp);
      assert.deepEqual(kubernetes.answers, ['kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1'], how);
      const headless = await dig(ns, DNS, ['db.shop.svc.cluster.local', 'AAAA'], tcp);
      assert.deepEqual(headless.answers, ['db.shop.svc.cluster.local. 30 IN AAAA fd10:244::32'], how);
      const srv = await dig(ns, DNS, ['_pg._tcp.db.shop.svc.cluster.local', 'SRV'], tcp);
      assert.deepEqual(srv.answers.sort(), [
        '_pg._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 50 5432 db-0.db.shop.svc.cluster.local.',
        '_pg._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 50 5432 fd10-244--32.db.shop.svc.cluster.local.',
      ], how);
      const ptr = await dig(ns, DNS, ['-x', '10.96.0.20'], tcp);
      assert.deepEqual(ptr.answers, ['20.0.96.10.in-addr.arpa. 30 IN PTR echo.default.svc.cluster.local.'], how);
      const pod = await dig(ns, DNS, ['10-244-0-77.default.pod.cluster.local', 'A'], tcp);
      assert.deepEqual(pod.answers, ['10-244-0-77.default.pod.cluster.local. 30 IN A 10.244.0.77'], how);
      const podPtr = await dig(ns, DNS, ['-x', '10.244.0.77'], tcp);
      assert.deepEqual(podPtr.answers, ['77.0.244.10.in-addr.arpa. 30 IN PTR 10-244-0-77.default.pod.cluster.local.'], how);
      for (const name of ['nope.default.svc.cluster.local', 'echo.nons.svc.cluster.local']) {
        const nx = await dig(ns, DNS, [name, 'A'], tcp);
        assert.equal(nx.status, 'NXDOMAIN', `${name} ${how}`);
        assert.match(nx.authority[0] ?? '', /^cluster\.local\. 30 IN SOA ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. \d+ 7200 1800 86400 30$/);
      }
      const forwarded = await dig(ns, DNS, ['www.upstream.test', 'A'], tcp);
      assert.deepEqual(forwarded.answers.map((l) => l.replace(/ \d+ IN /, ' IN ')), ['www.upstream.test. IN A 198.18.0.80'], how);
      assert.equal((await dig(ns, DNS, ['nothing.upstream.test', 'A'], tcp)).status, 'NXDOMAIN', `upstream NXDOMAIN over ${how}`);
      const external = await dig(ns, DNS, ['www.shop.svc.cluster.local', 'A'], tcp);
      assert.deepEqual(external.answers.map((l) => l.replace(/ \d+ IN A/, ' IN A')), [
        'www.shop.svc.cluster.local. 30 IN CNAME www.upstream.test.',
        'www.upstream.test. IN A 198.18.0.80',
      ], how);
    }
    const alias = await dig(ns, DNS, ['alias.shop.svc.cluster.local', 'A']);
    assert.deepEqual(alias.answers, [
      'alias.shop.svc.cluster.local. 30 IN CNAME echo.default.svc.cluster.local.',
      'echo.default.svc.cluster.local. 30 IN A 10.96.0.20',
    ]);
    // Too big for plain (512-byte) UDP: truncated, and complete over TCP.
    const many = Array.from({ length: 40 }, (_, i) => ({ ip: `fd10:244::1:${(i + 1).toString(16)}` }));
    await create(cp, '/api/v1/namespaces/shop/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'many' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } });
    await create(cp, '/api/v1/namespaces/shop/endpoints', { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'many' }, subsets: [{ addresses: many, ports: [{ port: 80 }] }] });
    await eventually('the big headless service over TCP', 10_000, async () => {
      const r = await dig(ns, DNS, ['many.shop.svc.cluster.local', 'AAAA'], true);
      return r.answers.length === 40 ? r : undefined;
    });
    const truncated = await ns.exec('dig', [`@${DNS}`, '+tries=1', '+time=3', '+noedns', '+ignore', 'many.shop.svc.cluster.local', 'AAAA']);
    assert.match(truncated.stdout, /flags: qr aa tc rd ra;/, truncated.stdout);
    assert.match(truncated.stdout, /ANSWER: 0,/);

    const overIpv6 = await dig(ns, DNS6, ['echo.default.svc.cluster.local', 'A']);
    assert.deepEqual(overIpv6.answers, ['echo.default.svc.cluster.local. 30 IN A 10.96.0.20']);

    await create(cp, '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'orders' },
      spec: { clusterIP: '10.96.0.30', ports: [{ port: 80 }] },
    });
    const started = Date.now();
    await eventually('a new service', 10_000, async () => {
      const r = await dig(ns, DNS, ['orders.shop.svc.cluster.local', 'A']);
      return r.answers.length > 0 ? r : undefined;
    });
    assert.ok(Date.now() - started < 5_000, `resolved after ${Date.now() - started} ms`);
  } finally {
    await cp.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
