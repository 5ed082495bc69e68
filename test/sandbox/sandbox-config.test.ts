import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIp, parsePrefix, prefixContains } from '../../src/netstack/wire/ip-address.js';
import { findRouteOverlaps } from '../../src/sandbox/host-routes.js';
import {
  checkSandboxName,
  findService,
  nameSuffix,
  podsOf,
  sandboxConfig,
  sandboxNamespaces,
  sandboxRanges,
} from '../../src/sandbox/sandbox-config.js';
import { SandboxError } from '../../src/sandbox/sandbox-errors.js';

function inAny(cidrs: readonly string[], address: string): boolean {
  return cidrs.some((c) => prefixContains(parsePrefix(c), parseIp(address)));
}

test('the default sandbox has the fixed topology other parts of kubetun rely on', () => {
  const c = sandboxConfig();
  assert.equal(c.name, 'kt');
  assert.deepEqual(c.namespaces, { workstation: 'kt-workstation', node: 'kt-node' });
  assert.deepEqual(c.link.node, { ipv4: '198.18.0.1', ipv6: '2001:2::1' });
  assert.deepEqual(c.link.workstation, { ipv4: '198.18.0.2', ipv6: '2001:2::2' });
  assert.equal(c.bridge.name, 'ktbr0');
  assert.deepEqual([c.bridge.ipv4, c.bridge.ipv6], ['10.244.0.1', 'fd10:244::1']);
  assert.deepEqual(c.podCidrs, ['10.244.0.0/16', 'fd10:244::/56']);
  assert.deepEqual(c.nodePodCidrs, ['10.244.0.0/24', 'fd10:244::/64']);
  assert.deepEqual(c.serviceCidrs, ['10.96.0.0/12', 'fd10:96::/112']);
  assert.deepEqual(c.clusterDns, { ipv4: '10.96.0.10', ipv6: 'fd10:96::a' });
  assert.equal(c.stateDir, '/run/kubetun-sandbox/kt');
  assert.equal(c.manager.url, 'http://198.18.0.1:30081');
  assert.deepEqual(c.workstationEnv, { KUBETUN_MANAGER_URL: 'http://198.18.0.1:30081', KUBETUN_SANDBOX: 'kt' });
  assert.deepEqual(findService(c, 'kube-dns', 'kube-system')?.clusterIPs, c.clusterDns);
  assert.equal(findService(c, 'traffic-manager', 'kubetun')?.clusterIPs.ipv4, '10.96.0.100');
  assert.deepEqual(c.nodePorts, [{ service: 'traffic-manager', namespace: 'kubetun', port: 30081, targetPort: 8081, protocol: 'TCP' }]);
});

test('workloads: echo has two replicas; redis, iperf, orders and the manager one each, in their namespaces', () => {
  const c = sandboxConfig('kts7');
  assert.equal(podsOf(c, 'echo', 'default').length, 2);
  for (const [deployment, namespace] of [
    ['redis', 'default'],
    ['iperf', 'default'],
    ['orders', 'shop'],
    ['traffic-manager', 'kubetun'],
    ['coredns', 'kube-system'],
  ] as const) {
    assert.equal(podsOf(c, deployment, namespace).length, 1, deployment);
  }
  const echo = findService(c, 'echo');
  assert.deepEqual(echo?.ports, [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }]);
  assert.equal(echo?.fqdn, 'echo.default.svc.cluster.local');
  assert.equal(findService(c, 'redis')?.ports[0]?.port, 6379);
  assert.equal(findService(c, 'iperf')?.ports[0]?.port, 5201);
  assert.equal(findService(c, 'orders', 'shop')?.ports[0]?.port, 80);
});

test('pods: Deployment-style names, their own namespace, distinct addresses from 10.244.0.10 on, inside the node podCIDR', () => {
  const c = sandboxConfig('kts7');
  const [first] = c.pods;
  assert.deepEqual([first?.ipv4, first?.ipv6], ['10.244.0.10', 'fd10:244::10']);
  const seen = new Set<string>();
  for (const pod of c.pods) {
    assert.match(pod.name, new RegExp(`^${pod.deployment}-[bcdfghjklmnpqrstvwxz2456789]{5}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
    assert.equal(pod.netns, `kts7-pod-${pod.name}`);
    assert.ok(inAny(c.nodePodCidrs, pod.ipv4) && inAny(c.nodePodCidrs, pod.ipv6), pod.name);
    assert.ok(pod.nodeInterface.length <= 15);
    for (const key of [pod.name, pod.ipv4, pod.ipv6, pod.nodeInterface]) {
      assert.ok(!seen.has(key), `${key} is used twice`);
      seen.add(key);
    }
  }
  const [a, b] = podsOf(c, 'echo');
  assert.equal(a!.name.split('-')[1], b!.name.split('-')[1], 'replicas share the template hash');
  assert.deepEqual(sandboxNamespaces(c).slice(0, 2), ['kts7-workstation', 'kts7-node']);
  assert.equal(sandboxNamespaces(c).length, 2 + c.pods.length);
});

test('every ClusterIP is inside the service CIDRs and distinct', () => {
  const c = sandboxConfig();
  const ips = c.services.flatMap((s) => [s.clusterIPs.ipv4, s.clusterIPs.ipv6]);
  assert.equal(new Set(ips).size, ips.length);
  for (const ip of ips) assert.ok(inAny(c.serviceCidrs, ip), ip);
});

test('the config is a pure function of the name: same name, same pods; another name, other pod names', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z][a-z0-9]{0,15}$/), (name) => {
      const one = sandboxConfig(name);
      assert.deepEqual(sandboxConfig(name), one);
      assert.ok(one.pods.every((p) => p.netns.startsWith(`${name}-pod-`)));
    }),
  );
  assert.notEqual(sandboxConfig('kta').pods[0]!.name, sandboxConfig('ktb').pods[0]!.name);
  assert.equal(nameSuffix('x'), nameSuffix('x'));
});

test('names that could not prefix namespace names are refused with BAD_NAME', () => {
  fc.assert(
    fc.property(
      fc.string().filter((s) => !/^[a-z][a-z0-9]{0,15}$/.test(s)),
      (name) => {
        assert.throws(() => checkSandboxName(name), (e: unknown) => e instanceof SandboxError && e.code === 'BAD_NAME');
      },
    ),
  );
  for (const bad of ['', 'Kt', '1kt', 'kt-a', 'kt/a', 'a'.repeat(17)]) assert.throws(() => sandboxConfig(bad), SandboxError);
});

test("the sandbox's ranges stay clear of this machine's own network and resolver", () => {
  const hostRoutes = ['192.0.2.0/24', 'fd00::/64', '10.255.255.53/32'].map((dst) => ({ family: dst.includes(':') ? (6 as const) : (4 as const), dst }));
  assert.deepEqual(findRouteOverlaps(sandboxRanges(sandboxConfig()), hostRoutes), []);
});
