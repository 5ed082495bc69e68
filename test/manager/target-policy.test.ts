import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { ClusterInfoSource } from '../../src/manager/cluster-info-source.js';
import { ownAddresses, TargetPolicy } from '../../src/manager/target-policy.js';
import { formatIp, parseIp, parsePrefix } from '../../src/netstack/wire/ip-address.js';

const OWN = '10.244.7.9';
const NODE = '198.18.0.2';

function policy(allow: string[], own = [OWN], loopbackForTests = false): TargetPolicy {
  const cluster = new ClusterInfoSource({
    podCidrs: [parsePrefix('10.244.0.0/16')],
    serviceCidrs: [parsePrefix('10.96.0.0/12')],
    dns: undefined,
    clusterDomain: 'cluster.local',
    nodeAddresses: [parseIp(NODE), parseIp('fd10::2')],
  });
  return new TargetPolicy(cluster, allow.map(parsePrefix), { own: own.map(parseIp), loopbackForTests });
}

/** Everything, so that only the hard deny list can refuse. */
const EVERYTHING = ['0.0.0.0/0', '::/0'];

const NEVER: [string, RegExp][] = [
  ['127.0.0.1', /loopback/],
  ['127.255.0.3', /loopback/],
  ['::1', /loopback/],
  ['0.0.0.0', /unspecified/],
  ['0.1.2.3', /unspecified/],
  ['::', /unspecified/],
  ['169.254.169.254', /link-local/],
  ['169.254.0.1', /link-local/],
  ['fe80::1', /link-local/],
  ['febf::1', /link-local/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['ff02::1', /multicast/],
  ['255.255.255.255', /broadcast/],
  ['::ffff:127.0.0.1', /loopback.*::ffff:0\.0\.0\.0\/96/],
  ['::ffff:7f00:1', /loopback/],
  ['::ffff:169.254.169.254', /link-local/],
  ['::ffff:0.0.0.0', /unspecified/],
  ['::ffff:224.0.0.1', /multicast/],
  ['::ffff:255.255.255.255', /broadcast/],
  ['64:ff9b::169.254.169.254', /link-local.*64:ff9b::\/96/],
  ['::127.0.0.1', /loopback/],
  [OWN, /traffic manager's own address/],
  [`::ffff:${OWN}`, /own address/],
  [NODE, /a node's address/],
  [`::ffff:${NODE}`, /a node's address/],
  ['fd10::2', /a node's address/],
];

test('the hard deny list refuses, whatever --allow says, and says why', () => {
  const check = policy(EVERYTHING);
  for (const [host, why] of NEVER) {
    const verdict = check.check(host);
    assert.equal(verdict.allowed, false, `${host} must be refused`);
    if (!verdict.allowed) {
      assert.match(verdict.message, why, host);
      assert.match(verdict.message, /never dials it, whatever --allow says/, host);
    }
  }
});

test('cluster CIDRs and --allow still decide for every other address', () => {
  const check = policy(['192.0.2.0/24']);
  assert.equal(check.check('10.244.3.4').allowed, true);
  assert.equal(check.check('10.96.0.10').allowed, true);
  assert.equal(check.check('192.0.2.7').allowed, true);
  const outside = check.check('8.8.8.8');
  assert.equal(outside.allowed, false);
  if (!outside.allowed) assert.match(outside.message, /outside the cluster's CIDRs.*--allow/);
  // A pod at the manager's own address is the manager itself.
  assert.equal(check.check(OWN).allowed, false);
});

test('the nodes are read from the cluster facts as they change', () => {
  const cluster = new ClusterInfoSource({ podCidrs: [parsePrefix('198.18.0.0/24')], serviceCidrs: [], dns: undefined, clusterDomain: 'c' });
  const check = new TargetPolicy(cluster, [], { own: [] });
  assert.equal(check.check('198.18.0.9').allowed, true);
  cluster.update({ podCidrs: [parsePrefix('198.18.0.0/23')], nodeAddresses: [parseIp('198.18.0.9')] });
  assert.equal(check.check('198.18.0.9').allowed, false);
});

test('the loopback switch for in-process tests lets loopback through and nothing else of the deny list', () => {
  const check = policy(EVERYTHING, [OWN, '127.0.0.1', '::1'], true);
  assert.equal(check.check('127.0.0.1').allowed, true);
  assert.equal(check.check('::1').allowed, true);
  assert.equal(check.check('169.254.169.254').allowed, false);
  assert.equal(check.check(OWN).allowed, false);
  assert.equal(check.check('0.0.0.0').allowed, false);
});

test("ownAddresses lists every interface's address and POD_IP", () => {
  const own = ownAddresses({ POD_IP: '10.244.99.1' }).map(formatIp);
  assert.ok(own.includes('10.244.99.1'));
  assert.ok(own.includes('127.0.0.1'));
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) assert.ok(own.includes(formatIp(parseIp(info.address.split('%')[0]!))), info.address);
  }
});
