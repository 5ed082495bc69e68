// ClusterDiscovery against a mock API server on loopback, for what the v1.20 control plane of the end-to-end
// test cannot show: the ServiceCIDR API, auto with a pod IP outside the node CIDRs, IPv6 probes, a probe the
// server accepts, in-cluster resolv.conf facts, and facts fixed by flags left alone.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../../../src/log/logger.js';
import { formatIp, formatPrefix } from '../../../src/netstack/wire/ip-address.js';
import type { ClusterFacts } from '../../../src/manager/cluster-info-source.js';
import { ClusterDiscovery, type DiscoveryOptions } from '../../../src/manager/discovery/cluster-discovery.js';

type Answer = { status: number; body: unknown } | 'watch';
type Route = (method: string, url: URL, body: string) => Answer | undefined;

const list = (items: unknown[]): Answer => ({ status: 200, body: { metadata: { resourceVersion: '1' }, items } });
const status = (code: number, message: string): Answer => ({ status: code, body: { kind: 'Status', code, message } });

/** The answers of a small v1.20-like cluster without a ServiceCIDR API; a test overrides routes in front. */
const base: Route = (method, url) => {
  if (url.searchParams.get('watch') === 'true') return 'watch';
  const path = url.pathname;
  if (path === '/apis/networking.k8s.io') return { status: 200, body: { versions: [{ version: 'v1' }], preferredVersion: { version: 'v1' } } };
  if (path === '/apis/networking.k8s.io/v1') return { status: 200, body: { resources: [{ name: 'ingresses' }, { name: 'networkpolicies' }] } };
  if (path === '/api/v1/namespaces/default/services/kubernetes') return { status: 200, body: { spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1'] } } };
  if (path === '/api/v1/namespaces/kube-system/services') return list([{ metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } }]);
  if (path === '/api/v1/nodes') {
    const addresses = [
      { type: 'InternalIP', address: '198.18.0.1' },
      { type: 'InternalIP', address: 'fd10::1' },
      { type: 'Hostname', address: 'a' },
    ];
    return list([{ metadata: { name: 'a' }, spec: { podCIDRs: ['10.244.0.0/24'] }, status: { addresses, images: [{ names: ['big'], sizeBytes: 1 }] } }]);
  }
  if (path === '/api/v1/namespaces') return list(['default', 'kube-system', 'shop'].map((name) => ({ metadata: { name }, status: { phase: 'Active' } })));
  if (path === '/api/v1/pods') return list([{ metadata: { name: 'p', namespace: 'default' }, spec: {}, status: { podIP: '10.8.3.3' } }]);
  if (path === '/api/v1/services') return list([{ metadata: { name: 'kubernetes', namespace: 'default' }, spec: { clusterIP: '10.96.0.1' } }]);
  if (method === 'POST' && path === '/api/v1/namespaces/default/services') {
    return status(422, 'Service "x" is invalid: spec.clusterIPs: Invalid value: []string{"1.1.1.1"}: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16');
  }
  return undefined;
};

async function mockApi(t: TestContext, route: Route): Promise<{ kubeConfig: KubeConfig; requests: string[] }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://mock');
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      const answer = route(req.method ?? 'GET', url, Buffer.concat(chunks).toString()) ?? base(req.method ?? 'GET', url, '') ?? status(404, 'not found');
      if (answer === 'watch') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    // client-node refuses plain HTTP unless TLS verification is off.
    clusters: [{ name: 'mock', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'mock', cluster: 'mock', user: 'u' }],
    currentContext: 'mock',
  });
  return { kubeConfig, requests };
}

async function discover(t: TestContext, kubeConfig: KubeConfig, options: Partial<DiscoveryOptions> = {}): Promise<Partial<ClusterFacts>> {
  return newDiscovery(t, kubeConfig, options).start();
}

function newDiscovery(t: TestContext, kubeConfig: KubeConfig, options: Partial<DiscoveryOptions> = {}): ClusterDiscovery {
  const discovery = new ClusterDiscovery({
    kubeConfig,
    podCidrStrategy: 'auto',
    fixed: { podCidrs: false, serviceCidrs: false, dns: false, clusterDomain: false },
    namespace: 'default',
    inCluster: false,
    log: silentLogger,
    debounceMs: 10,
    syncTimeoutMs: 5_000,
    ...options,
  });
  t.after(() => discovery.stop());
  return discovery;
}

/** The pod CIDRs of every update the discovery sends from now on, and a wait for one that `ok` accepts. */
function podCidrUpdates(discovery: ClusterDiscovery): { seen: string[][]; waitFor(ok: (cidrs: string[]) => boolean, what: string): Promise<void> } {
  const seen: string[][] = [];
  discovery.follow({ update: (facts) => void (facts.podCidrs && seen.push(facts.podCidrs.map(formatPrefix))) });
  return {
    seen,
    async waitFor(ok, what) {
      for (let i = 0; i < 200 && !seen.some(ok); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(seen.some(ok), `${what}; the pod CIDRs sent were ${JSON.stringify(seen)}`);
    },
  };
}

const shown = (facts: Partial<ClusterFacts>): Record<string, unknown> => ({
  ...facts,
  ...(facts.podCidrs ? { podCidrs: facts.podCidrs.map(formatPrefix) } : {}),
  ...(facts.serviceCidrs ? { serviceCidrs: facts.serviceCidrs.map(formatPrefix) } : {}),
  ...(facts.nodeAddresses ? { nodeAddresses: facts.nodeAddresses.map(formatIp) } : {}),
});

const baseMembers = { namespaces: ['default', 'kube-system', 'shop'], nodeAddresses: ['198.18.0.1', 'fd10::1'] };

test('mock API: v1.20-like cluster gives node CIDRs, the probed range and kube-dns; the probe is a dry run first', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, () => undefined);
  const facts = await discover(t, kubeConfig, { ownPodIp: '10.244.0.9' });
  assert.deepEqual(shown(facts), { podCidrs: ['10.244.0.0/24'], serviceCidrs: ['10.96.0.0/16'], dns: { ip: '10.96.0.10', port: 53 }, ...baseMembers });
  assert.ok(requests.includes('POST /api/v1/namespaces/default/services?dryRun=All'));
  // Lists are paginated.
  const lists = requests.filter((r) => /^GET \/api\/v1\/(nodes|namespaces)\?/.test(r) && !r.includes('watch=true'));
  assert.ok(lists.length === 2 && lists.every((r) => r.includes('limit=500')), requests.join('\n'));
  assert.ok(!requests.some((r) => r.startsWith('GET /api/v1/pods')), 'auto lists pods only when node CIDRs do not fit');
});

test('mock API: dual-stack Services on a cluster whose own Service is IPv4: the probe gives IPv4, ClusterIPs cover IPv6', async (t) => {
  const services = [
    { metadata: { name: 'kubernetes', namespace: 'default' }, spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1'] } },
    { metadata: { name: 'echo', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd10:96::14'] } },
    { metadata: { name: 'redis', namespace: 'default' }, spec: { clusterIP: '10.96.0.21', clusterIPs: ['10.96.0.21', 'fd10:96::15'] } },
  ];
  const { kubeConfig } = await mockApi(t, (_method, url) => (url.pathname === '/api/v1/services' && url.searchParams.get('watch') !== 'true' ? list(services) : undefined));
  const facts = await discover(t, kubeConfig, { ownPodIp: '10.244.0.9' });
  assert.deepEqual(facts.serviceCidrs?.map(formatPrefix), ['10.96.0.0/16', 'fd10:96::/120']);
});

test('mock API: auto covers pod IPs when the manager pod IP is outside every node CIDR', async (t) => {
  const { kubeConfig } = await mockApi(t, () => undefined);
  const facts = await discover(t, kubeConfig, { ownPodIp: '10.8.3.4' });
  assert.deepEqual(facts.podCidrs?.map(formatPrefix), ['10.8.3.0/24']);
});

test('mock API: the ServiceCIDR API wins when the server has it (found by discovery), and no probe is made', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, (_method, url) => {
    if (url.pathname === '/apis/networking.k8s.io/v1') return { status: 200, body: { resources: [{ name: 'servicecidrs' }, { name: 'servicecidrs/status' }] } };
    if (url.pathname === '/apis/networking.k8s.io/v1/servicecidrs' && !url.searchParams.has('watch')) {
      return list([{ metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.43.0.0/16', 'fd10:43::/112'] } }]);
    }
    return undefined;
  });
  const facts = await discover(t, kubeConfig);
  assert.deepEqual(facts.serviceCidrs?.map(formatPrefix), ['10.43.0.0/16', 'fd10:43::/112']);
  assert.ok(!requests.some((r) => r.startsWith('POST')));
});

test('mock API: a dual-stack cluster is probed for both families and both ranges are kept', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, (method, url, body) => {
    if (url.pathname === '/api/v1/namespaces/default/services/kubernetes') {
      return { status: 200, body: { spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1', 'fd10:96::1'] } } };
    }
    if (method === 'POST' && body.includes('2001:4860')) return status(422, 'Service "x" is invalid: … The range of valid IPs is fd10:96::/112');
    return undefined;
  });
  const facts = await discover(t, kubeConfig);
  assert.deepEqual(facts.serviceCidrs?.map(formatPrefix), ['10.96.0.0/16', 'fd10:96::/112']);
  assert.equal(requests.filter((r) => r.startsWith('POST')).length, 2);
});

test('mock API: a server that accepts the probe gets the Service deleted again, and ClusterIPs are covered', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, (method) => {
    if (method === 'POST') return { status: 201, body: { metadata: { name: 'kubetun-service-cidr-probe-x1' } } };
    if (method === 'DELETE') return { status: 200, body: {} };
    return undefined;
  });
  const facts = await discover(t, kubeConfig);
  assert.deepEqual(
    requests.filter((r) => !r.startsWith('GET')),
    [
      'POST /api/v1/namespaces/default/services?dryRun=All',
      'POST /api/v1/namespaces/default/services',
      'DELETE /api/v1/namespaces/default/services/kubetun-service-cidr-probe-x1',
    ],
  );
  assert.deepEqual(facts.serviceCidrs?.map(formatPrefix), ['10.96.0.0/24']);
});

test('mock API: in a pod without a kube-dns Service, resolv.conf gives the DNS server and the cluster domain', async (t) => {
  const { kubeConfig } = await mockApi(t, (_method, url) => (url.pathname === '/api/v1/namespaces/kube-system/services' && !url.searchParams.has('watch') ? list([]) : undefined));
  const facts = await discover(t, kubeConfig, {
    inCluster: true,
    namespace: 'shop',
    readResolvConf: () => 'search shop.svc.corp.example svc.corp.example corp.example\nnameserver 10.43.0.10\n',
  });
  assert.deepEqual(facts.dns, { ip: '10.43.0.10', port: 53 });
  assert.equal(facts.clusterDomain, 'corp.example');
});

test('mock API: facts fixed by flags are neither discovered nor asked for (nodes are listed for their addresses only)', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, () => undefined);
  const facts = await discover(t, kubeConfig, { fixed: { podCidrs: true, serviceCidrs: false, dns: true, clusterDomain: true } });
  assert.deepEqual(shown(facts), { serviceCidrs: ['10.96.0.0/16'], ...baseMembers });
  assert.ok(!requests.some((r) => r.includes('/pods') || r.includes('kube-system')), requests.join('\n'));
});

test('mock API: the probe Service is created in the manager namespace, never elsewhere', async (t) => {
  const { kubeConfig, requests } = await mockApi(t, (method, url) =>
    method === 'POST' && url.pathname === '/api/v1/namespaces/kubetun/services'
      ? status(422, 'Service "x" is invalid: spec.clusterIPs: Invalid value: []string{"1.1.1.1"}: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16')
      : undefined,
  );
  const facts = await discover(t, kubeConfig, { namespace: 'kubetun' });
  assert.deepEqual(facts.serviceCidrs?.map(formatPrefix), ['10.96.0.0/16']);
  assert.deepEqual(requests.filter((r) => r.startsWith('POST')), ['POST /api/v1/namespaces/kubetun/services?dryRun=All']);
});

test('mock API: namespaces and node addresses follow the cluster; invalid names and addresses are left out', async (t) => {
  let namespaces = ['default', 'shop', 'Not_A_Label'];
  let nodeIp = '198.18.0.1';
  const { kubeConfig } = await mockApi(t, (_method, url) => {
    const followed = url.pathname === '/api/v1/namespaces' || url.pathname === '/api/v1/nodes';
    // Every watch of these expires at once (410 Gone): the informers list again, and see the new state.
    if (url.searchParams.get('watch') === 'true') return followed ? status(410, 'too old resource version') : undefined;
    if (url.pathname === '/api/v1/namespaces') return list(namespaces.map((name) => ({ metadata: { name } })));
    if (url.pathname === '/api/v1/nodes') {
      const addresses = [{ type: 'ExternalIP', address: nodeIp }, { type: 'InternalIP', address: 'not-an-ip' }, { type: 'InternalDNS', address: '10.0.0.9' }];
      return list([{ metadata: { name: 'a' }, spec: { podCIDRs: ['10.244.0.0/24'] }, status: { addresses } }]);
    }
    return undefined;
  });
  const discovery = newDiscovery(t, kubeConfig, { podCidrStrategy: 'coverPodIPs', ...fastRetry });
  const facts = await discovery.start();
  assert.deepEqual(facts.namespaces, ['default', 'shop']);
  assert.deepEqual(facts.nodeAddresses?.map(formatIp), ['198.18.0.1']);
  const updates: Partial<ClusterFacts>[] = [];
  discovery.follow({ update: (f) => void updates.push(f) });
  namespaces = ['com', 'default'];
  nodeIp = '198.18.0.2';
  for (let i = 0; i < 300 && !updates.some((f) => f.namespaces?.join() === 'com,default' && f.nodeAddresses?.map(formatIp).join() === '198.18.0.2'); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(updates.some((f) => f.namespaces?.join() === 'com,default' && f.nodeAddresses?.map(formatIp).join() === '198.18.0.2'), JSON.stringify(updates.map(shown)));
});

test('mock API: namespaces or nodes forbidden: discovery goes on without them, at once', async (t) => {
  const forbidden = (what: string): ReturnType<typeof status> => status(403, `${what} is forbidden: User "u" cannot list resource "${what}"`);
  const { kubeConfig } = await mockApi(t, (_method, url) =>
    url.pathname === '/api/v1/namespaces' ? forbidden('namespaces') : url.pathname === '/api/v1/nodes' ? forbidden('nodes') : undefined,
  );
  const started = Date.now();
  const facts = await discover(t, kubeConfig, { podCidrStrategy: 'coverPodIPs', syncTimeoutMs: 20_000 });
  assert.equal(facts.namespaces, undefined);
  assert.equal(facts.nodeAddresses, undefined);
  assert.deepEqual(facts.podCidrs?.map(formatPrefix), ['10.8.3.0/24']);
  assert.ok(Date.now() - started < 20_000, 'start() waited for the sync timeout');
});

test('mock API: coverPodIPs without permission to list pods fails with the permission named', async (t) => {
  const { kubeConfig } = await mockApi(t, (_method, url) =>
    url.pathname === '/api/v1/pods' ? status(403, 'pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope') : undefined,
  );
  await assert.rejects(discover(t, kubeConfig, { podCidrStrategy: 'coverPodIPs' }), /listing pods is forbidden \(403\).*"list" and "watch" on pods/);
});

const nodesForbidden = status(403, 'nodes is forbidden: User "system:serviceaccount:kubetun:traffic-manager" cannot list resource "nodes" in API group "" at the cluster scope');
const fastRetry = { backoff: { initialMs: 20, maxMs: 50 } };

test('mock API: a 403 on nodes after they were listed (an API server restarting) is retried; auto keeps the node CIDRs', async (t) => {
  let lists = 0;
  let watches = 0;
  const { kubeConfig, requests } = await mockApi(t, (_method, url) => {
    if (url.pathname !== '/api/v1/nodes') return undefined;
    if (url.searchParams.get('watch') === 'true') return ++watches === 1 ? status(500, 'etcdserver: leader changed') : undefined;
    lists++;
    if (lists === 2) return nodesForbidden;
    const nodes = [{ metadata: { name: 'a' }, spec: { podCIDRs: ['10.244.0.0/24'] } }];
    return list(lists === 1 ? nodes : [...nodes, { metadata: { name: 'b' }, spec: { podCIDRs: ['10.244.1.0/24'] } }]);
  });
  const discovery = newDiscovery(t, kubeConfig, { ownPodIp: '10.244.0.9', ...fastRetry });
  assert.deepEqual((await discovery.start()).podCidrs?.map(formatPrefix), ['10.244.0.0/24']);
  const updates = podCidrUpdates(discovery);
  await updates.waitFor((cidrs) => cidrs.join() === '10.244.0.0/23', 'node b was not added after the 403');
  assert.ok(lists >= 3, `nodes listed ${lists} times`);
  assert.ok(!updates.seen.some((cidrs) => cidrs.includes('10.8.3.0/24')), 'switched to covering pod IPs');
  assert.ok(!requests.some((r) => r.startsWith('GET /api/v1/pods')), 'pods were listed');
});

test('mock API: nodes forbidden at first, allowed later: auto covers pod IPs meanwhile, then uses node CIDRs again', async (t) => {
  let allowed = false;
  const { kubeConfig, requests } = await mockApi(t, (_method, url) => {
    if (url.pathname !== '/api/v1/nodes' || url.searchParams.get('watch') === 'true') return undefined;
    return allowed ? undefined : nodesForbidden;
  });
  const discovery = newDiscovery(t, kubeConfig, { ownPodIp: '10.244.0.9', ...fastRetry });
  assert.deepEqual((await discovery.start()).podCidrs?.map(formatPrefix), ['10.8.3.0/24']);
  const updates = podCidrUpdates(discovery);
  allowed = true;
  await updates.waitFor((cidrs) => cidrs.join() === '10.244.0.0/24', 'the node CIDRs did not come back');
  const podLists = requests.filter((r) => r.startsWith('GET /api/v1/pods')).length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(requests.filter((r) => r.startsWith('GET /api/v1/pods')).length, podLists, 'the pods are still listed or watched');
});
