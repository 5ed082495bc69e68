// The root daemon's resolver with stub answerers standing in for the traffic manager and the upstream server (the
// real ones are exercised end to end against the sandbox); what is tested here is the routing, cache and framing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDnsMessage, DnsFlag, DnsRcode, DnsType, parseDnsMessage, rcodeOf, textToName, type DnsRecord } from '../../src/dns/dns-message.js';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { routeName } from '../../src/rootd/dns/cluster-names.js';
import { CLASSIC_UDP_LIMIT, DnsResolver, MAX_UDP_ANSWER } from '../../src/rootd/dns/dns-resolver.js';

const FACTS = { clusterDomain: 'cluster.local', subnets: [parsePrefix('10.96.0.0/12')], namespaces: ['default', 'shop'] };

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

test('names are routed: cluster domain, svc, reported namespaces and cluster PTRs to the cluster; others upstream', () => {
  const r = (s: string) => routeName(textToName(s), FACTS);
  assert.equal(r('echo.default.svc.cluster.local'), 'cluster');
  assert.equal(r('ECHO.Default.SVC'), 'cluster');
  assert.equal(r('orders.shop'), 'cluster');
  assert.equal(r('orders.Shop'), 'cluster');
  assert.equal(r('20.0.96.10.in-addr.arpa'), 'cluster');
  assert.equal(r('1.2.0.192.in-addr.arpa'), 'upstream');
  assert.equal(r('www.upstream.test'), 'upstream');
});

test('resolv.conf mode: nothing else leaves for the cluster, a single label or name.not-a-namespace included', () => {
  const r = (s: string) => routeName(textToName(s), FACTS);
  assert.equal(r('echo'), 'upstream', 'glibc applies the search list to a single label itself');
  assert.equal(r('github.com'), 'upstream');
  assert.equal(r('orders.staging'), 'upstream', 'staging is not a namespace the manager reported');
  assert.equal(r('svc'), 'upstream');
  assert.equal(routeName(textToName('orders.shop'), { clusterDomain: 'cluster.local', subnets: [] }), 'upstream', 'no namespaces reported');
});

test('a namespace named like a public suffix (Telepresence\'s excludeSuffixes) never shadows it', () => {
  const facts = { ...FACTS, namespaces: ['com', 'io', 'net', 'org', 'ru', 'arpa', 'shop'] };
  for (const name of ['google.com', 'www.google.com', 'github.io', 'example.net', 'wikipedia.org', 'yandex.ru', 'x.arpa']) {
    assert.equal(routeName(textToName(name), facts), 'upstream', name);
  }
  assert.equal(routeName(textToName('google.com.svc.cluster.local'), facts), 'cluster');
  assert.equal(routeName(textToName('orders.shop'), facts), 'cluster');
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

test('google.com with a namespace `com` reported (a Service google in it) gets the upstream answer, never the cluster\'s', async () => {
  const h = harness();
  const resolver = new DnsResolver({
    cluster: () => async (q) => {
      h.asked.cluster.push('?');
      return answer(q, 0);
    },
    upstream: async (q) => {
      h.asked.upstream.push(parseDnsMessage(q).questions[0]!.name.join('.'));
      return answer(q, 0);
    },
    facts: () => ({ ...FACTS, namespaces: ['default', 'com'] }),
  });
  const reply = parseDnsMessage(await resolver.resolve(query('google.com')));
  assert.equal(rcodeOf(reply.flags), DnsRcode.NOERROR);
  assert.deepEqual(h.asked, { cluster: [], upstream: ['google.com'] });
});

test('non-cluster names never reach the cluster', async () => {
  const h = harness();
  await h.resolver.resolve(query('www.upstream.test'));
  assert.deepEqual(h.asked, { cluster: [], upstream: ['www.upstream.test'] });
});

test('not connected: cluster names get SERVFAIL, unreadable queries FORMERR', async () => {
  const resolver = new DnsResolver({ cluster: () => null, upstream: async (q) => q, facts: () => FACTS });
  assert.equal(rcodeOf(parseDnsMessage(await resolver.resolve(query('echo.default'))).flags), DnsRcode.SERVFAIL);
  const garbage = await resolver.resolve(Buffer.from([1, 2, 3]));
  assert.equal(garbage.readUInt16BE(2) & 0xf, DnsRcode.FORMERR);
});

test('over UDP, an answer too large for a client without EDNS is truncated with TC set', async () => {
  const resolver = new DnsResolver({ cluster: () => async (q) => answer(q, 0, 60, 60), upstream: async (q) => q, facts: () => FACTS });
  const reply = await resolver.resolve(query('big.default.svc.cluster.local'), 'udp');
  assert.ok(reply.length <= 512);
  assert.ok((reply.readUInt16BE(2) & DnsFlag.TC) !== 0);
  assert.ok((await resolver.resolve(query('big.default.svc.cluster.local'), 'tcp')).length > 512);
});

/** A query offering EDNS with the given UDP payload size (the OPT record's CLASS). */
function ednsQuery(name: string, type: number, bufsize: number, id = 9): Buffer {
  const opt: DnsRecord = { name: [], type: DnsType.OPT, class: bufsize, ttl: 0, data: Buffer.alloc(0) };
  return buildDnsMessage({ id, flags: DnsFlag.RD, questions: [{ name: textToName(name), type, class: 1 }], answers: [], authorities: [], additionals: [opt] });
}

/** TXT RDATA of `bytes` bytes or so: strings of 250 bytes, each with its length byte. */
function txtData(bytes: number): Buffer {
  const strings = Math.ceil(bytes / 251);
  return Buffer.concat(Array.from({ length: strings }, (_, i) => Buffer.concat([Buffer.from([250]), Buffer.alloc(250, 97 + (i % 26))])));
}

/** An upstream answering TXT questions with `records` records of `each` bytes, plus an OPT record. */
function txtUpstream(records: number, each: number): (q: Buffer) => Promise<Buffer> {
  return async (q) => {
    const m = parseDnsMessage(q);
    const answers: DnsRecord[] = Array.from({ length: records }, () => ({ name: m.questions[0]!.name, type: DnsType.TXT, class: 1, ttl: 60, data: txtData(each) }));
    const opt: DnsRecord = { name: [], type: DnsType.OPT, class: 4096, ttl: 0, data: Buffer.alloc(0) };
    return buildDnsMessage({ ...m, flags: DnsFlag.QR | DnsFlag.RD | DnsFlag.RA, answers, additionals: [opt] });
  };
}

test('over UDP an answer never exceeds what the client offered (EDNS within [512, 4096], 512 without), with TC; over TCP it is whole', async () => {
  const resolver = new DnsResolver({ cluster: () => null, upstream: txtUpstream(240, 250), facts: () => FACTS });
  const cases: [Buffer, number][] = [
    [ednsQuery('big.example', DnsType.TXT, 65535), MAX_UDP_ANSWER],
    [ednsQuery('big.example', DnsType.TXT, 1232), 1232],
    [ednsQuery('big.example', DnsType.TXT, 100), CLASSIC_UDP_LIMIT],
    [query('big.example', DnsType.TXT), CLASSIC_UDP_LIMIT],
  ];
  for (const [q, limit] of cases) {
    const reply = await resolver.resolve(q, 'udp');
    assert.ok(reply.length <= limit, `${reply.length} > ${limit}`);
    const m = parseDnsMessage(reply);
    assert.ok((m.flags & DnsFlag.TC) !== 0);
    assert.equal(m.id, parseDnsMessage(q).id);
    assert.ok(m.answers.length < 240);
    assert.ok(m.answers.length >= Math.floor((limit - 200) / 270), `records dropped only as needed: ${m.answers.length} kept in ${limit}`);
  }
  const whole = parseDnsMessage(await resolver.resolve(ednsQuery('big.example', DnsType.TXT, 65535), 'tcp'));
  assert.equal(whole.answers.length, 240);
  assert.equal(whole.flags & DnsFlag.TC, 0);
});

test('a small answer to an EDNS client comes back as it was, OPT included', async () => {
  const resolver = new DnsResolver({ cluster: () => null, upstream: txtUpstream(1, 100), facts: () => FACTS });
  const reply = parseDnsMessage(await resolver.resolve(ednsQuery('small.example', DnsType.TXT, 1232), 'udp'));
  assert.equal(reply.flags & DnsFlag.TC, 0);
  assert.equal(reply.answers.length, 1);
  assert.equal(reply.additionals[0]?.type, DnsType.OPT);
});

test('a query must ask exactly one question: none or two get FORMERR and nothing is asked', async () => {
  const h = harness();
  for (const questions of [[], [{ name: textToName('a.example'), type: DnsType.A, class: 1 }, { name: textToName('b.example'), type: DnsType.A, class: 1 }]]) {
    const wire = buildDnsMessage({ id: 5, flags: DnsFlag.RD, questions, answers: [], authorities: [], additionals: [] });
    const reply = await h.resolver.resolve(wire);
    assert.equal(reply.readUInt16BE(0), 5);
    assert.equal(reply.readUInt16BE(2) & 0xf, DnsRcode.FORMERR);
  }
  assert.deepEqual(h.asked, { cluster: [], upstream: [] });
});

test('the single label "www.github.com" cannot poison the cache entry of www.github.com', async () => {
  const asked: string[][] = [];
  const resolver = new DnsResolver({
    cluster: () => null,
    upstream: async (q) => {
      const m = parseDnsMessage(q);
      asked.push(m.questions[0]!.name);
      const poisoned = m.questions[0]!.name.length === 1;
      return buildDnsMessage({ ...m, flags: DnsFlag.QR | DnsFlag.RA, answers: [{ name: m.questions[0]!.name, type: DnsType.A, class: 1, ttl: 300, data: Buffer.from(poisoned ? [6, 6, 6, 6] : [140, 82, 121, 4]) }] });
    },
    facts: () => FACTS,
  });
  const single = buildDnsMessage({ id: 1, flags: DnsFlag.RD, questions: [{ name: ['www.github.com'], type: DnsType.A, class: 1 }], answers: [], authorities: [], additionals: [] });
  await resolver.resolve(single);
  const real = parseDnsMessage(await resolver.resolve(query('WWW.GitHub.com')));
  assert.deepEqual([...real.answers[0]!.data], [140, 82, 121, 4]);
  assert.deepEqual(asked, [['www.github.com'], ['WWW', 'GitHub', 'com']]);
  await resolver.resolve(query('www.github.com'));
  assert.equal(asked.length, 2, 'names differing only in ASCII case share one entry');
});

test('an upstream answer that cannot be parsed becomes SERVFAIL', async () => {
  const resolver = new DnsResolver({ cluster: () => null, upstream: async () => Buffer.from([1, 2, 3]), facts: () => FACTS });
  assert.equal(rcodeOf(parseDnsMessage(await resolver.resolve(query('x.example'))).flags), DnsRcode.SERVFAIL);
});
