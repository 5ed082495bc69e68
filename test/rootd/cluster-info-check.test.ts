import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { ClusterInfoSchema, DnsConfigSchema } from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { formatPrefix, parseIp, parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { checkClusterInfo, ClusterInfoError, MAX_SEARCH_ENTRIES, type ClusterInfoCheckContext } from '../../src/rootd/cluster-info-check.js';

const laptop: ClusterInfoCheckContext = { alsoProxy: [], defaultGateways: [parseIp('192.168.1.1'), parseIp('fd00::1')] };
const GOOD = {
  podCidrs: ['10.244.0.0/16', 'fd10:244::/56'],
  serviceCidrs: ['10.96.0.0/12', 'fd10:96::/112'],
  dns: { clusterDomain: 'cluster.local', searchPath: ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], namespaces: ['default', 'kube-system'] },
};
const info = (change: Omit<MessageInitShape<typeof ClusterInfoSchema>, '$typeName'> = {}) => create(ClusterInfoSchema, { ...GOOD, ...change });
const dns = (change: Partial<typeof GOOD.dns>) => create(DnsConfigSchema, { ...GOOD.dns, ...change });

function rejected(change: Omit<MessageInitShape<typeof ClusterInfoSchema>, '$typeName'>, why: RegExp, context = laptop): void {
  assert.throws(
    () => checkClusterInfo(info(change), context),
    (error: unknown) => error instanceof ClusterInfoError && error.code === 'CLUSTER_INFO_REJECTED' && why.test(error.message),
  );
}

test('a usual cluster passes as it is', () => {
  const checked = checkClusterInfo(info(), laptop);
  assert.deepEqual(checked.subnets.map(formatPrefix), ['10.244.0.0/16', 'fd10:244::/56', '10.96.0.0/12', 'fd10:96::/112']);
  assert.equal(checked.clusterDomain, 'cluster.local');
  assert.deepEqual(checked.searchPath, GOOD.dns.searchPath);
  assert.deepEqual(checked.namespaces, ['default', 'kube-system']);
});

test('no DNS facts: the default domain and search path', () => {
  const checked = checkClusterInfo(create(ClusterInfoSchema, { podCidrs: ['10.244.0.0/16'] }), laptop);
  assert.deepEqual(checked.searchPath, ['svc.cluster.local', 'cluster.local']);
});

test('subnets: not a CIDR, too wide, a default route, special ranges, the default gateway', () => {
  rejected({ podCidrs: ['10.244.0.0/16\nnameserver 1.2.3.4'] }, /subnet "10\.244\.0\.0\/16\\nnameserver 1\.2\.3\.4" is not a CIDR/);
  rejected({ podCidrs: ['0.0.0.0/1'] }, /subnet 0\.0\.0\.0\/1 is wider than \/8; if the cluster really uses it, pass it with --also-proxy 0\.0\.0\.0\/1/);
  rejected({ podCidrs: ['0.0.0.0/1'] }, /overlaps loopback \(127\.0\.0\.0\/8\)/);
  rejected({ serviceCidrs: ['fd00::/16'] }, /wider than \/32/);
  rejected({ serviceCidrs: ['::/0'] }, /is a default route/, { ...laptop, alsoProxy: [parsePrefix('::/0')] });
  rejected({ podCidrs: ['169.254.0.0/16'] }, /overlaps link-local/);
  rejected({ podCidrs: ['127.0.0.0/8'] }, /overlaps loopback/);
  rejected({ podCidrs: ['224.0.0.0/8'] }, /overlaps multicast/);
  rejected({ podCidrs: ['255.255.255.0/24'] }, /overlaps broadcast/);
  rejected({ podCidrs: ['0.0.0.0/8'] }, /overlaps this network/);
  rejected({ podCidrs: ['::ffff:10.0.0.0/104'] }, /overlaps IPv4-mapped/);
  rejected({ podCidrs: ['fe80::/64'] }, /overlaps link-local/);
  rejected({ podCidrs: ['ff02::/16'] }, /overlaps multicast/);
  rejected({ podCidrs: ['192.168.0.0/16'] }, /192\.168\.0\.0\/16 contains the default route's gateway/);
});

test('--also-proxy allows a wider subnet inside it, but never a default route or a special range', () => {
  const alsoProxy = [parsePrefix('8.0.0.0/7')];
  assert.deepEqual(checkClusterInfo(info({ podCidrs: ['8.0.0.0/7'] }), { ...laptop, alsoProxy }).subnets.map(formatPrefix).slice(0, 1), ['8.0.0.0/7']);
  rejected({ podCidrs: ['0.0.0.0/1'] }, /overlaps loopback/, { ...laptop, alsoProxy: [parsePrefix('0.0.0.0/1')] });
  rejected({}, /--also-proxy 127\.0\.0\.0\/8 overlaps loopback/, { ...laptop, alsoProxy: [parsePrefix('127.0.0.0/8')] });
  rejected({}, /--also-proxy 192\.168\.0\.0\/16 contains the default route's gateway/, { ...laptop, alsoProxy: [parsePrefix('192.168.0.0/16')] });
});

test('domain and search entries: plain DNS labels only, at most six entries', () => {
  rejected({ dns: dns({ clusterDomain: '.' }) }, /cluster domain "\." has an empty label/);
  rejected({ dns: dns({ clusterDomain: 'cluster.local.' }) }, /empty label/);
  rejected({ dns: dns({ clusterDomain: 'cluster local' }) }, /the label "cluster local"/);
  rejected({ dns: dns({ searchPath: ['svc.cluster.local\nnameserver 6.6.6.6'] }) }, /search entry "svc\.cluster\.local\\nnameserver 6\.6\.6\.6" has the label "local\\nnameserver 6"/);
  rejected({ dns: dns({ searchPath: [`${'a'.repeat(64)}.local`] }) }, /labels are 1 to 63/);
  rejected({ dns: dns({ searchPath: [`${'a.'.repeat(127)}ab`] }) }, /longer than 253/);
  rejected({ dns: dns({ searchPath: Array.from({ length: MAX_SEARCH_ENTRIES + 1 }, (_, i) => `s${i}.local`) }) }, /7 search entries sent; at most 6/);
});

test('namespaces: DNS-1123 labels only', () => {
  rejected({ dns: dns({ namespaces: ['default', 'Shop'] }) }, /namespace name\(s\) are not DNS-1123 labels, e.g. "Shop"/);
  rejected({ dns: dns({ namespaces: ['com.evil'] }) }, /"com\.evil"/);
  rejected({ dns: dns({ namespaces: [''] }) }, /not DNS-1123/);
});

test('every problem is named, the hostile value quoted and cut short', () => {
  assert.throws(
    () => checkClusterInfo(info({ podCidrs: ['x'.repeat(10_000)], dns: dns({ clusterDomain: '.' }) }), laptop),
    (error: unknown) => {
      assert.ok(error instanceof ClusterInfoError);
      assert.equal(error.problems.length, 2);
      assert.ok(error.message.length < 1000);
      assert.doesNotMatch(error.message, /x{81}/);
      return true;
    },
  );
});

test('property: whatever is sent, the result is either an error or routes and names that are safe to apply', () => {
  const label = fc.stringMatching(/^[a-z0-9.\n -]{0,12}$/);
  const cidr = fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, l]) => `${a}/${l}`),
    fc.string(),
  );
  fc.assert(
    fc.property(fc.array(cidr, { maxLength: 4 }), label, fc.array(label, { maxLength: 8 }), (cidrs, domain, search) => {
      let checked;
      try {
        checked = checkClusterInfo(info({ podCidrs: cidrs, serviceCidrs: [], dns: { clusterDomain: domain, searchPath: search } }), laptop);
      } catch (error) {
        assert.ok(error instanceof ClusterInfoError);
        return;
      }
      for (const subnet of checked.subnets) assert.ok(subnet.length >= (subnet.address.length === 4 ? 8 : 32));
      for (const name of [checked.clusterDomain, ...checked.searchPath]) assert.match(name, /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/);
      assert.ok(checked.searchPath.length <= MAX_SEARCH_ENTRIES);
    }),
    { numRuns: 2000 },
  );
});
