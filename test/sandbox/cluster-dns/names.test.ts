import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatIp } from '../../../src/netstack/wire/ip-address.js';
import {
  clusterName,
  dashedIp,
  parseClusterName,
  parseDashedIp,
  parseReverseName,
  reverseName,
  type ClusterName,
} from '../../../src/sandbox/cluster-dns/names.js';

const domain = ['cluster', 'local'];
const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$/);
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIp(b));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIp(b));
const ip = fc.oneof(ipv4, ipv6);
const zone = fc.constantFrom('svc' as const, 'pod' as const);

const names: fc.Arbitrary<ClusterName> = fc.oneof(
  fc.constant({ kind: 'apex' as const }),
  zone.map((z) => ({ kind: 'zone' as const, zone: z })),
  fc.record({ kind: fc.constant('namespace' as const), zone, namespace: label }),
  fc.record({ kind: fc.constant('service' as const), namespace: label, service: label }),
  fc.record({ kind: fc.constant('srv' as const), namespace: label, service: label, port: label, protocol: fc.constantFrom('tcp', 'udp', 'sctp') }),
  // An endpoint label never starts with '_' and is not a whole SRV name.
  fc.record({ kind: fc.constant('endpoint' as const), namespace: label, service: label, endpoint: label }),
  fc.record({ kind: fc.constant('pod' as const), namespace: label, ip }),
).map((n) => ({ ...n })); // plain objects, as the parser makes

test('property: parseClusterName inverts clusterName, in any letter case', () => {
  fc.assert(
    fc.property(names, fc.boolean(), (what, upper) => {
      const name = clusterName(what, domain).map((l) => (upper ? l.toUpperCase() : l));
      assert.deepEqual(parseClusterName(name, domain), what);
    }),
  );
});

test('property: a name outside the domain is outside; one with extra labels is nothing (NXDOMAIN)', () => {
  fc.assert(
    fc.property(fc.array(label, { maxLength: 6 }), (labels) => {
      assert.equal(parseClusterName([...labels, 'example', 'com'], domain), 'outside');
      assert.equal(parseClusterName([...labels, 'local'], domain), 'outside');
    }),
  );
  assert.equal(parseClusterName(['a', 'b', 'c', 'd', 'e', 'svc', 'cluster', 'local'], domain), null);
  assert.equal(parseClusterName(['x', 'default', 'pod', 'cluster', 'local'], domain), null, 'not a dashed IP');
  assert.equal(parseClusterName(['a', 'b', 'default', 'pod', 'cluster', 'local'], domain), null);
  assert.equal(parseClusterName(['foo', 'cluster', 'local'], domain), null, 'neither svc nor pod');
  assert.equal(parseClusterName(['_', '_tcp', 'web', 'default', 'svc', 'cluster', 'local'], domain), null, 'an empty port name');
});

test('property: dashed IPs round-trip to the canonical address', () => {
  fc.assert(fc.property(ip, (address) => assert.equal(parseDashedIp(dashedIp(address)), address)));
  assert.equal(parseDashedIp('10-244-0-11'), '10.244.0.11');
  assert.equal(parseDashedIp('fd10-244--11'), 'fd10:244::11');
  assert.equal(parseDashedIp('fd10-244-0-0-0-0-0-11'), 'fd10:244::11', 'an uncompressed IPv6 label');
  assert.equal(parseDashedIp('10-244-0'), null);
  assert.equal(parseDashedIp('web-1'), null);
});

test('property: reverse names round-trip; partial or malformed ones are not addresses', () => {
  fc.assert(fc.property(ip, (address) => assert.equal(parseReverseName(reverseName(address)), address)));
  fc.assert(
    fc.property(ip, fc.integer({ min: 1, max: 3 }), (address, drop) => {
      assert.equal(parseReverseName(reverseName(address).slice(drop)), null);
    }),
  );
  assert.deepEqual(reverseName('10.96.0.10'), ['10', '0', '96', '10', 'in-addr', 'arpa']);
  assert.equal(reverseName('fd10:96::a').join('.'), `a.${'0.'.repeat(23)}6.9.0.0.0.1.d.f.ip6.arpa`);
  assert.equal(parseReverseName(['10', '0', '96', '256', 'in-addr', 'arpa']), null);
  assert.equal(parseReverseName(['10', '0', '96', '010', 'in-addr', 'arpa']), null);
  assert.equal(parseReverseName(['10', '0', '96', '10', 'IN-ADDR', 'ARPA']), '10.96.0.10');
});
