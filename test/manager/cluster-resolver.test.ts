import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveInCluster, searchCandidates } from '../../src/manager/cluster-resolver.js';
import {
  DnsFlag,
  DnsRcode,
  DnsType,
  buildDnsMessage,
  nameToText,
  parseDnsMessage,
  rcodeOf,
  textToName,
} from '../../src/dns/dns-message.js';

const inDefault = { namespace: 'default', clusterDomain: 'cluster.local' };

function query(name: string): Buffer {
  return buildDnsMessage({
    id: 0xbeef,
    flags: DnsFlag.RD,
    questions: [{ name: textToName(name), type: DnsType.A, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  });
}

/** A fake cluster DNS knowing `records` (name → IPv4); it logs the names it was asked. */
function fakeDns(records: Record<string, number[]>, asked: string[]) {
  return async (wire: Buffer): Promise<Buffer> => {
    const q = parseDnsMessage(wire);
    const name = nameToText(q.questions[0]!.name);
    asked.push(name);
    const ip = records[name.toLowerCase()];
    return buildDnsMessage({
      ...q,
      flags: DnsFlag.QR | DnsFlag.RD | DnsFlag.RA | (ip ? DnsRcode.NOERROR : DnsRcode.NXDOMAIN),
      answers: ip ? [{ name: q.questions[0]!.name, type: DnsType.A, class: 1, ttl: 5, data: Buffer.from(ip) }] : [],
    });
  };
}

test('the search path is the namespace, svc, the domain, then the name itself when it has a dot', () => {
  const text = (names: string[][]) => names.map(nameToText);
  assert.deepEqual(text(searchCandidates(['echo'], 'shop', 'cluster.local')), [
    'echo.shop.svc.cluster.local',
    'echo.svc.cluster.local',
    'echo.cluster.local',
  ]);
  assert.deepEqual(text(searchCandidates(['orders', 'shop'], 'default', 'cluster.local')).at(-1), 'orders.shop');
  const full = textToName('a.b.svc.cluster.local');
  assert.deepEqual(text(searchCandidates(full, 'x', 'cluster.local')), ['a.b.svc.cluster.local']);
});

test('the first candidate that is not NXDOMAIN wins and is rewritten to the name asked', async () => {
  const asked: string[] = [];
  const records = { 'orders.shop.svc.cluster.local': [10, 96, 0, 30], 'orders.shop': [1, 2, 3, 4] };
  const exchange = fakeDns(records, asked);
  const answer = parseDnsMessage(await resolveInCluster(query('Orders.Shop'), { ...inDefault, exchange }));
  assert.equal(answer.id, 0xbeef);
  assert.equal(rcodeOf(answer.flags), DnsRcode.NOERROR);
  assert.equal(nameToText(answer.questions[0]!.name), 'Orders.Shop');
  assert.equal(nameToText(answer.answers[0]!.name), 'Orders.Shop');
  assert.deepEqual([...answer.answers[0]!.data], [10, 96, 0, 30]);
  assert.equal(asked.length, 4, 'all candidates are asked at once');
});

test('all NXDOMAIN gives NXDOMAIN for the name asked', async () => {
  const exchange = fakeDns({}, []);
  const answer = parseDnsMessage(await resolveInCluster(query('ghost'), { ...inDefault, exchange }));
  assert.equal(rcodeOf(answer.flags), DnsRcode.NXDOMAIN);
  assert.equal(nameToText(answer.questions[0]!.name), 'ghost');
});

test('a cluster DNS that does not answer gives SERVFAIL, not an exception', async () => {
  const exchange = async (): Promise<Buffer> => {
    throw new Error('timed out');
  };
  const answer = parseDnsMessage(await resolveInCluster(query('echo'), { ...inDefault, exchange }));
  assert.equal(rcodeOf(answer.flags), DnsRcode.SERVFAIL);
  assert.equal(answer.id, 0xbeef);
  assert.equal(nameToText(answer.questions[0]!.name), 'echo');
});
