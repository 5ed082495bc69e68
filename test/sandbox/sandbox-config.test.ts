import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIp, parsePrefix, prefixContains } from '../../src/netstack/wire/ip-address.js';
import { findRouteOverlaps } from '../../src/sandbox/host-routes.js';
import { sandboxManifests, collectionPath } from '../../src/sandbox/cluster-manifests.js';
import { imageMap } from '../../src/sandbox/image-map.js';
import { imageRepository } from '../../src/sandbox/kubelet/images.js';
import { checkSandboxName, findService, sandboxConfig, sandboxNamespaces, sandboxRanges } from '../../src/sandbox/sandbox-config.js';
import { SandboxError } from '../../src/sandbox/sandbox-errors.js';

function inAny(cidrs: readonly string[], address: string): boolean {
  return cidrs.some((c) => prefixContains(parsePrefix(c), parseIp(address)));
}

test('the default sandbox has the fixed topology other parts of kubetun rely on', () => {
  const c = sandboxConfig();
  assert.equal(c.name, 'kt');
  assert.deepEqual(c.namespaces, { workstation: 'kt-workstation', node: 'kt-node' });
  assert.equal(c.podNetnsPrefix, 'kt-pod-');
  assert.deepEqual(c.link.node, { ipv4: '198.18.0.1', ipv6: '2001:2::1' });
  assert.deepEqual(c.link.workstation, { ipv4: '198.18.0.2', ipv6: '2001:2::2' });
  assert.equal(c.bridge.name, 'ktbr0');
  assert.equal(c.controlPlane.server, 'https://198.18.0.1:6443');
  assert.equal(c.controlPlane.serviceClusterIpRange, '10.96.0.0/16,fd10:96::/112');
  assert.deepEqual(c.podCidrs, ['10.244.0.0/16', 'fd10:244::/56']);
  assert.deepEqual(c.serviceCidrs, ['10.96.0.0/16', 'fd10:96::/112']);
  assert.deepEqual(c.clusterDns, { ipv4: '10.96.0.10', ipv6: 'fd10:96::a' });
  assert.equal(c.stateDir, '/run/kubetun-sandbox/kt');
  assert.equal(c.manager.url, 'https://198.18.0.1:30443');
  assert.equal(c.manager.caFile, '/run/kubetun-sandbox/kt/manager-ca.crt');
  assert.deepEqual(c.workstationEnv, { KUBECONFIG: '/run/kubetun-sandbox/kt/workstation.kubeconfig', KUBETUN_SANDBOX: 'kt' });
  assert.deepEqual(findService(c, 'kube-dns', 'kube-system')?.clusterIPs, c.clusterDns);
  assert.deepEqual(sandboxNamespaces(c), ['kt-workstation', 'kt-node']);
});

test('two nodes with their own pod CIDRs inside the cluster pod CIDRs, and kubelet ports of their own', () => {
  const c = sandboxConfig('kts7');
  assert.deepEqual(c.nodes.map((n) => n.name), ['node-1', 'node-2']);
  assert.equal(new Set(c.nodes.map((n) => n.kubeletPort)).size, c.nodes.length);
  const cidrs = c.nodes.flatMap((n) => n.podCidrs);
  assert.equal(new Set(cidrs).size, cidrs.length);
  for (const cidr of cidrs) assert.ok(inAny(c.podCidrs, cidr.split('/')[0]!), cidr);
});

test('workloads: Deployments with their Services (fixed dual-stack ClusterIPs), every image known to the kubelet', () => {
  const c = sandboxConfig('kts7');
  const echo = findService(c, 'echo');
  assert.deepEqual(echo?.ports, [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
  assert.equal(echo?.fqdn, 'echo.default.svc.cluster.local');
  assert.equal(findService(c, 'orders', 'shop')?.ports[0]?.port, 80);
  assert.equal(c.deployments.find((d) => d.name === 'echo')?.replicas, 2);
  const images = imageMap('/usr/bin/node');
  for (const d of c.deployments) assert.ok(images[imageRepository(d.image)] !== undefined, d.image);
  const objects = sandboxManifests(c);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.ok(kinds.indexOf('Namespace/shop') < kinds.indexOf('Deployment/orders'));
  assert.ok(kinds.includes('ClusterRoleBinding/kubetun-sandbox-cluster-dns'));
  const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'echo')!;
  assert.deepEqual((service.spec as { clusterIPs: string[] }).clusterIPs, ['10.96.0.20', 'fd10:96::14']);
  assert.equal(collectionPath(service), '/api/v1/namespaces/default/services');
  assert.equal(collectionPath(objects.find((o) => o.kind === 'Deployment')!), `/apis/apps/v1/namespaces/kube-system/deployments`);
  assert.equal(collectionPath(objects.find((o) => o.kind === 'ClusterRole')!), '/apis/rbac.authorization.k8s.io/v1/clusterroles');
  assert.equal(collectionPath(objects.find((o) => o.kind === 'Namespace')!), '/api/v1/namespaces');
});

test('intercept targets: echo has a named targetPort and env from a ConfigMap and a Secret (created before it); hello a numeric targetPort', () => {
  const c = sandboxConfig('kts7');
  const objects = sandboxManifests(c);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.ok(kinds.indexOf('ConfigMap/echo-config') < kinds.indexOf('Deployment/echo'));
  assert.ok(kinds.indexOf('Secret/echo-secret') < kinds.indexOf('Deployment/echo'));
  assert.deepEqual(objects.find((o) => o.kind === 'ConfigMap')!.data, { color: 'blue' });
  assert.deepEqual(objects.find((o) => o.kind === 'Secret')!.stringData, { token: 's3cret-token' });
  type Spec = { template: { spec: { containers: { env: { name: string }[]; envFrom?: unknown[]; ports: unknown[] }[] } } };
  const container = (name: string) => (objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name)!.spec as Spec).template.spec.containers[0]!;
  const echo = container('echo');
  assert.deepEqual(echo.ports, [{ name: 'http', containerPort: 80 }]);
  assert.deepEqual(echo.env.map((e) => e.name), ['POD_NAME', 'POD_NAMESPACE', 'POD_IP', 'GREETING', 'ECHO_COLOR', 'ECHO_TOKEN']);
  assert.deepEqual(echo.env[4], { name: 'ECHO_COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } });
  assert.deepEqual(echo.env[5], { name: 'ECHO_TOKEN', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } });
  assert.deepEqual(echo.envFrom, [{ configMapRef: { name: 'echo-config' }, prefix: 'CFG_' }]);
  const hello = findService(c, 'hello');
  assert.deepEqual(hello?.ports, [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }]);
  assert.deepEqual(hello?.clusterIPs, { ipv4: '10.96.0.23', ipv6: 'fd10:96::17' });
  assert.equal(c.deployments.find((d) => d.name === 'hello')?.replicas, 1);
  assert.deepEqual(container('hello').ports, [{ containerPort: 80 }]);
  assert.equal(container('hello').envFrom, undefined);
});

test('every ClusterIP is inside the service CIDRs and distinct', () => {
  const c = sandboxConfig();
  const ips = c.services.flatMap((s) => [s.clusterIPs.ipv4, s.clusterIPs.ipv6]);
  assert.equal(new Set(ips).size, ips.length);
  for (const ip of ips) assert.ok(inAny(c.serviceCidrs, ip), ip);
});

test('the config is a pure function of the name', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z][a-z0-9]{0,15}$/), (name) => {
      const one = sandboxConfig(name);
      assert.deepEqual(sandboxConfig(name), one);
      assert.ok(one.podNetnsPrefix.startsWith(`${name}-`));
    }),
  );
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
