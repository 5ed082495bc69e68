// The root daemon's resolver with stub answerers standing in for the traffic manager and the upstream server (the
// real ones are exercised end to end against the sandbox); what is tested here is the routing, cache and framing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDnsMessage, DnsFlag, DnsRcode, DnsType, parseDnsMessage, rcodeOf, textToName, type DnsRecord } from '../../src/dns/dns-message.js';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { routeName } from '../../src/rootd/dns/cluster-names.js';
import { DnsResolver } from '../../src/rootd/dns/dns-resolver.js';

const FACTS = { clusterDomain: 'cluster.local', subnets: [parsePrefix('10.96.0.0/12')] };

function query(name: string, type: number = DnsType.A, id = 7): Buffer {
  return buildDnsMessage({ id, flags: DnsFlag.RD, questions: [{ name: textToName(name), type, class: 1 }], answers: [], authorities: [], additionals: [] });
}

function answer(q: Buffer, rcode: number, ttl = 60, records = 1): Buffer {
  const m = parseDnsMessage(q);
  const answers: DnsRecord[] = Array.from({ length: rcode === 0 ? records : 0 }, (_, i) => ({
    name: m.questions[0]!.name, type: DnsType.A, class: 1, ttl, data: Buffer.from([10, 96, 0, 20 + (i % 200)]),
  }));
  return buildDnsMessage({ ...m, flags: DnsFlag.QR | DnsFlag.RD | DnsFlag.RA | rcode, answers });
}

function harness(clusterRcode = 0) {
  const asked = { cluster: [] as string[], upstream: [] as string[] };
  let now = 0;
  const nameOf = (q: Buffer): string => parseDnsMessage(q).questions[0]!.name.join('.');
  const resolver = new DnsResolver({
    cluster: () => async (q) => {
      asked.cluster.push(nameOf(q));
      return answer(q, clusterRcode);
    },
    upstream: async (q) => {
      asked.upstream.push(nameOf(q));
      return answer(q, 0);
    },
    facts: () => FACTS,
    now: () => now,
  });
  return { resolver, asked, advance: (ms: number) => (now += ms) };
}

test('names are routed: cluster domain, svc, single labels and cluster PTRs to the cluster; others upstream', () => {
  const r = (s: string) => routeName(textToName(s), FACTS);
  assert.equal(r('echo.default.svc.cluster.local'), 'cluster');
  assert.equal(r('echo.default.svc'), 'cluster');
  assert.equal(r('echo'), 'cluster');
  assert.equal(r('orders.shop'), 'cluster-then-upstream');
  assert.equal(r('www.upstream.test'), 'upstream');
  assert.equal(r('20.0.96.10.in-addr.arpa'), 'cluster');
  assert.equal(r('1.2.0.192.in-addr.arpa'), 'upstream');
});

test('a cluster name is answered by the cluster, with the asker\'s id, and cached within its TTL', async () => {
  const h = harness();
  const first = parseDnsMessage(await h.resolver.resolve(query('echo.default.svc.cluster.local', DnsType.A, 11)));
  assert.equal(first.id, 11);
  assert.equal(first.answers.length, 1);
  const again = parseDnsMessage(await h.resolver.resolve(query('echo.default.svc.cluster.local', DnsType.A, 12)));
  assert.equal(again.id, 12);
  assert.deepEqual(h.asked.cluster, ['echo.default.svc.cluster.local']);
  h.advance(31_000);
  await h.resolver.resolve(query('echo.default.svc.cluster.local'));
  assert.equal(h.asked.cluster.length, 2);
});

test('concurrent identical queries go out once (single flight)', async () => {
  const h = harness();
  await Promise.all(Array.from({ length: 10 }, (_, i) => h.resolver.resolve(query('redis.default.svc.cluster.local', DnsType.A, i))));
  assert.equal(h.asked.cluster.length, 1);
});

test('name.namespace: cluster first, upstream when the cluster says NXDOMAIN', async () => {
  const h = harness(DnsRcode.NXDOMAIN);
  const reply = parseDnsMessage(await h.resolver.resolve(query('example.com')));
  assert.equal(rcodeOf(reply.flags), DnsRcode.NOERROR);
  assert.deepEqual(h.asked, { cluster: ['example.com'], upstream: ['example.com'] });
});

test('non-cluster names never reach the cluster', async () => {
  const h = harness();
  await h.resolver.resolve(query('www.upstream.test'));
  assert.deepEqual(h.asked, { cluster: [], upstream: ['www.upstream.test'] });
});

test('not connected: cluster names get SERVFAIL, unreadable queries FORMERR', async () => {
  const resolver = new DnsResolver({ cluster: () => null, upstream: async (q) => q, facts: () => FACTS });
  assert.equal(rcodeOf(parseDnsMessage(await resolver.resolve(query('echo'))).flags), DnsRcode.SERVFAIL);
  const garbage = await resolver.resolve(Buffer.from([1, 2, 3]));
  assert.equal(garbage.readUInt16BE(2) & 0xf, DnsRcode.FORMERR);
});

test('over UDP, an answer too large for a client without EDNS is truncated with TC set', async () => {
  const resolver = new DnsResolver({ cluster: () => async (q) => answer(q, 0, 60, 60), upstream: async (q) => q, facts: () => FACTS });
  const reply = await resolver.resolveForUdp(query('big.default.svc.cluster.local'));
  assert.ok(reply.length <= 512);
  assert.ok((reply.readUInt16BE(2) & DnsFlag.TC) !== 0);
  assert.ok((await resolver.resolve(query('big.default.svc.cluster.local'))).length > 512);
});
