import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Endpoints, V1Pod, V1Service } from '@kubernetes/client-node';
import { DnsRcode, DnsType, textToName, type DnsRecord } from '../../../src/dns/dns-message.js';
import { formatIp } from '../../../src/netstack/wire/ip-address.js';
import { answerQuestion, buildDnsIndex, DNS_TTL_S, type ClusterState } from '../../../src/sandbox/cluster-dns/dns-index.js';
import { reverseName } from '../../../src/sandbox/cluster-dns/names.js';

const svc = (name: string, namespace: string, spec: V1Service['spec']): V1Service => ({ metadata: { name, namespace }, spec });
const state: ClusterState = {
  namespaces: [{ metadata: { name: 'default' } }, { metadata: { name: 'shop' } }, { metadata: { name: 'empty' } }],
  services: [
    svc('echo', 'default', {
      clusterIP: '10.96.0.20',
      clusterIPs: ['10.96.0.20', 'fd10:96::14'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { port: 8080 }],
    }),
    svc('db', 'shop', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] }),
    svc('ext', 'shop', { type: 'ExternalName', externalName: 'www.upstream.test' }),
    svc('alias', 'shop', { type: 'ExternalName', externalName: 'echo.default.svc.cluster.local' }),
  ],
  endpoints: [
    {
      metadata: { name: 'db', namespace: 'shop' },
      subsets: [
        {
          addresses: [{ ip: '10.244.0.31', hostname: 'db-0' }, { ip: '10.244.0.32' }],
          notReadyAddresses: [{ ip: '10.244.0.33' }],
          ports: [{ name: 'pg', port: 5433, protocol: 'TCP' }],
        },
      ],
    } satisfies V1Endpoints,
  ],
  pods: [
    { metadata: { name: 'echo-1', namespace: 'default' }, status: { podIP: '10.244.0.11', podIPs: [{ ip: '10.244.0.11' }, { ip: 'fd10:244::11' }] } },
    { metadata: { name: 'db-0', namespace: 'shop' }, status: { podIP: '10.244.0.31' } },
  ] satisfies V1Pod[],
};
const index = buildDnsIndex('cluster.local', state);

function ask(name: string, type: number): ReturnType<typeof answerQuestion> {
  return answerQuestion(index, { name: textToName(name), type, class: 1 });
}

function ips(records: readonly DnsRecord[]): string[] {
  return records.filter((r) => r.type === DnsType.A || r.type === DnsType.AAAA).map((r) => formatIp(r.data));
}

const wire = (name: string): Buffer => Buffer.concat([...textToName(name).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);

test('a ClusterIP service: A and AAAA of its ClusterIPs, TTL 30, owner as asked', () => {
  const a = ask('Echo.Default.svc.cluster.local', DnsType.A)!;
  assert.equal(a.rcode, DnsRcode.NOERROR);
  assert.deepEqual(ips(a.answers), ['10.96.0.20']);
  assert.deepEqual(a.answers[0]!.name, ['Echo', 'Default', 'svc', 'cluster', 'local']);
  assert.equal(a.answers[0]!.ttl, DNS_TTL_S);
  assert.deepEqual(ips(ask('echo.default.svc.cluster.local', DnsType.AAAA)!.answers), ['fd10:96::14']);
});

test('SRV for a named port points at the service name, with its addresses as additionals; unnamed ports have none', () => {
  const srv = ask('_http._tcp.echo.default.svc.cluster.local', DnsType.SRV)!;
  assert.equal(srv.answers.length, 1);
  const data = srv.answers[0]!.data;
  assert.deepEqual([data.readUInt16BE(0), data.readUInt16BE(2), data.readUInt16BE(4)], [0, 100, 80]);
  assert.deepEqual(data.subarray(6), wire('echo.default.svc.cluster.local'));
  assert.deepEqual(ips(srv.additionals).sort(), ['10.96.0.20', 'fd10:96::14']);
  assert.equal(ask('_http._udp.echo.default.svc.cluster.local', DnsType.SRV)!.rcode, DnsRcode.NXDOMAIN);
});

test('a headless service answers with its ready endpoints, each by hostname or dashed IP, with SRV per endpoint', () => {
  assert.deepEqual(ips(ask('db.shop.svc.cluster.local', DnsType.A)!.answers), ['10.244.0.31', '10.244.0.32']);
  assert.deepEqual(ips(ask('db-0.db.shop.svc.cluster.local', DnsType.A)!.answers), ['10.244.0.31']);
  assert.deepEqual(ips(ask('10-244-0-32.db.shop.svc.cluster.local', DnsType.A)!.answers), ['10.244.0.32']);
  assert.equal(ask('10-244-0-33.db.shop.svc.cluster.local', DnsType.A)!.rcode, DnsRcode.NXDOMAIN, 'not ready');
  const srv = ask('_pg._tcp.db.shop.svc.cluster.local', DnsType.SRV)!;
  assert.deepEqual(
    srv.answers.map((r) => [r.data.readUInt16BE(2), r.data.readUInt16BE(4), r.data.subarray(6)]),
    [
      [50, 5433, wire('db-0.db.shop.svc.cluster.local')],
      [50, 5433, wire('10-244-0-32.db.shop.svc.cluster.local')],
    ],
  );
});

test('ExternalName: a CNAME; the target is chased (outside names by the server)', () => {
  const ext = ask('ext.shop.svc.cluster.local', DnsType.A)!;
  assert.deepEqual(ext.answers.map((r) => [r.type, r.data]), [[DnsType.CNAME, wire('www.upstream.test')]]);
  assert.deepEqual(ext.chase, { name: ['www', 'upstream', 'test'], type: DnsType.A, class: 1 });
  assert.equal(ask('ext.shop.svc.cluster.local', DnsType.CNAME)!.chase, undefined);
});

test('pods by dashed IP, verified against the namespace', () => {
  assert.deepEqual(ips(ask('10-244-0-11.default.pod.cluster.local', DnsType.A)!.answers), ['10.244.0.11']);
  assert.deepEqual(ips(ask('fd10-244--11.default.pod.cluster.local', DnsType.AAAA)!.answers), ['fd10:244::11']);
  assert.equal(ask('10-244-0-11.shop.pod.cluster.local', DnsType.A)!.rcode, DnsRcode.NXDOMAIN);
  assert.equal(ask('10-244-0-99.default.pod.cluster.local', DnsType.A)!.rcode, DnsRcode.NXDOMAIN);
});

test('PTR for service, endpoint and pod IPs; unknown reverse names and outside names are not answered here', () => {
  const ptr = (ip: string): string[] =>
    (answerQuestion(index, { name: reverseName(ip), type: DnsType.PTR, class: 1 })?.answers ?? []).map((r) => r.data.toString('latin1'));
  assert.deepEqual(ptr('10.96.0.20'), [wire('echo.default.svc.cluster.local').toString('latin1')]);
  assert.deepEqual(ptr('fd10:96::14'), [wire('echo.default.svc.cluster.local').toString('latin1')]);
  assert.deepEqual(ptr('10.244.0.31'), [wire('db-0.db.shop.svc.cluster.local').toString('latin1')], 'the endpoint name wins over the pod name');
  assert.deepEqual(ptr('fd10:244::11'), [wire('fd10-244--11.default.pod.cluster.local').toString('latin1')]);
  assert.equal(answerQuestion(index, { name: reverseName('10.244.9.9'), type: DnsType.PTR, class: 1 }), null);
  assert.equal(ask('www.upstream.test', DnsType.A), null);
});

test('NXDOMAIN with the SOA for unknown services and namespaces; NODATA for names that exist without the type', () => {
  for (const name of ['nope.default.svc.cluster.local', 'echo.nons.svc.cluster.local', 'nons.svc.cluster.local', 'x.cluster.local']) {
    const a = ask(name, DnsType.A)!;
    assert.equal(a.rcode, DnsRcode.NXDOMAIN, name);
    assert.deepEqual(a.authorities.map((r) => [r.type, r.name]), [[DnsType.SOA, ['cluster', 'local']]], name);
  }
  for (const [name, type] of [
    ['empty.svc.cluster.local', DnsType.A],
    ['svc.cluster.local', DnsType.A],
    ['cluster.local', DnsType.A],
    ['echo.default.svc.cluster.local', DnsType.TXT],
    ['db.shop.svc.cluster.local', DnsType.AAAA],
  ] as const) {
    const a = ask(name, type)!;
    assert.equal(a.rcode, DnsRcode.NOERROR, name);
    assert.equal(a.answers.length, 0, name);
    assert.equal(a.authorities[0]?.type, DnsType.SOA, name);
  }
  assert.equal(ask('cluster.local', DnsType.SOA)!.answers[0]?.type, DnsType.SOA);
});
