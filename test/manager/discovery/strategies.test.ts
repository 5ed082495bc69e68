// The discovery strategies as pure functions of plain Kubernetes objects (no API): node CIDRs, pod IPs, the
// probe's message, ClusterIPs, ServiceCIDR objects, kube-dns and resolv.conf.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { formatPrefix, parseIp, parsePrefix } from '../../../src/netstack/wire/ip-address.js';
import { coverPodIps, isPodCidrStrategy, nodeCidrsUsable, nodePodCidrs, type Rejected } from '../../../src/manager/discovery/pod-cidrs.js';
import { coverClusterIps, parseValidRanges, serviceCidrsFromObjects } from '../../../src/manager/discovery/service-cidrs.js';
import { buildDnsMessage, DnsFlag, DnsType, nameBytes, nameToText, parseDnsMessage, textToName } from '../../../src/dns/dns-message.js';
import {
  clusterDomainByReverseLookup,
  clusterDomainFromResolvConf,
  clusterDomainFromServiceName,
  dnsFromKubeDnsService,
  dnsFromResolvConf,
} from '../../../src/manager/discovery/cluster-dns.js';

const texts = (prefixes: { address: Uint8Array; length: number }[]): string[] => prefixes.map(formatPrefix);

const node = (name: string, spec: V1Node['spec']): V1Node => ({ metadata: { name }, spec });
const pod = (namespace: string, name: string, status: V1Pod['status'], hostNetwork = false): V1Pod => ({
  metadata: { namespace, name },
  spec: { containers: [], hostNetwork },
  status,
});

test('nodePodCIDRs: spec.podCIDRs of all nodes (or the older spec.podCIDR), aggregated, dual-stack kept', () => {
  const nodes = [
    node('a', { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24', 'fd10:244::/64'] }),
    node('b', { podCIDR: '10.244.1.0/24' }),
    node('c', {}),
    node('d', { podCIDRs: ['10.250.0.0/24'] }),
  ];
  assert.deepEqual(texts(nodePodCidrs(nodes)), ['10.244.0.0/23', '10.250.0.0/24', 'fd10:244::/64']);
  const rejected: Rejected[] = [];
  assert.deepEqual(texts(nodePodCidrs([node('x', { podCIDRs: ['not-a-cidr', '10.1.0.0/24'] })], rejected)), ['10.1.0.0/24']);
  assert.deepEqual(rejected, [{ object: 'node/x', value: 'not-a-cidr' }]);
  assert.deepEqual(nodePodCidrs([]), []);
});

test('coverPodIPs: kube-system and hostNetwork pods are left out, podIPs (or podIP) of the others covered', () => {
  const pods = [
    pod('default', 'web', { podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd10:244::1:5' }] }),
    pod('shop', 'db', { podIP: '10.244.1.77' }),
    pod('kube-system', 'coredns', { podIP: '10.99.0.2' }),
    pod('default', 'node-exporter', { podIP: '192.168.5.5' }, true),
    pod('default', 'pending', {}),
  ];
  assert.deepEqual(texts(coverPodIps(pods)), ['10.244.1.0/24', 'fd10:244::1:0/120']);
  const rejected: Rejected[] = [];
  assert.deepEqual(coverPodIps([pod('a', 'b', { podIP: 'garbage' })], rejected), []);
  assert.deepEqual(rejected, [{ object: 'pod/a/b', value: 'garbage' }]);
});

test('auto: node CIDRs are used when they hold the manager pod IP (or there is no pod IP), else not', () => {
  const cidrs = [parsePrefix('10.244.0.0/24'), parsePrefix('10.244.1.0/24')];
  assert.equal(nodeCidrsUsable(cidrs, parseIp('10.244.1.9')), true);
  assert.equal(nodeCidrsUsable(cidrs, parseIp('10.8.3.3')), false);
  assert.equal(nodeCidrsUsable(cidrs, undefined), true);
  assert.equal(nodeCidrsUsable([], undefined), false);
  assert.equal(nodeCidrsUsable([], parseIp('10.244.1.9')), false);
});

test('strategy names', () => {
  for (const name of ['auto', 'nodePodCIDRs', 'coverPodIPs', 'environment']) assert.equal(isPodCidrStrategy(name), true);
  assert.equal(isPodCidrStrategy('nodepodcidrs'), false);
});

test('the probe message: one range (v1.20 and later wordings), two ranges, none', () => {
  const v120 =
    'Service "x" is invalid: spec.clusterIPs: Invalid value: []string{"1.1.1.1"}: failed to allocated ip:1.1.1.1 with error:provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16';
  assert.deepEqual(texts(parseValidRanges(v120)), ['10.96.0.0/16']);
  const newer = 'Service "x" is invalid: spec.clusterIPs: Invalid value: ["1.1.1.1"]: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16';
  assert.deepEqual(texts(parseValidRanges(newer)), ['10.43.0.0/16']);
  assert.deepEqual(texts(parseValidRanges('… The range of valid IPs is 10.96.0.0/12, fd10:96::/112')), ['10.96.0.0/12', 'fd10:96::/112']);
  assert.deepEqual(parseValidRanges('Service "x" is invalid: metadata.name: Required value'), []);
});

test('ClusterIPs covered: headless services skipped, dual-stack ClusterIPs both covered', () => {
  const svc = (clusterIP: string, clusterIPs?: string[]): V1Service => ({ spec: { clusterIP, ...(clusterIPs ? { clusterIPs } : {}) } });
  const services = [svc('10.96.0.1'), svc('10.96.0.10'), svc('None'), svc('10.96.200.3', ['10.96.200.3', 'fd10:96::3'])];
  assert.deepEqual(texts(coverClusterIps(services)), ['10.96.0.0/16', 'fd10:96::/120']);
  assert.deepEqual(texts(coverClusterIps([svc('10.96.0.1'), svc('10.96.0.10')])), ['10.96.0.0/24']);
});

test('ServiceCIDR objects: spec.cidrs of all objects not being deleted', () => {
  const objects = [
    { metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd10:96::/112'] } },
    { metadata: { name: 'extra' }, spec: { cidrs: ['10.97.0.0/16'] } },
    { metadata: { name: 'going', deletionTimestamp: new Date() }, spec: { cidrs: ['10.200.0.0/16'] } },
  ];
  assert.deepEqual(texts(serviceCidrsFromObjects(objects)), ['10.96.0.0/15', 'fd10:96::/112']);
});

test('cluster DNS from the kube-dns Service: its ClusterIP and UDP port named dns', () => {
  const kubeDns: V1Service = {
    spec: {
      clusterIP: '10.96.0.10',
      ports: [
        { name: 'metrics', port: 9153, protocol: 'TCP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'dns', port: 5353, protocol: 'UDP' },
      ],
    },
  };
  assert.deepEqual(dnsFromKubeDnsService(kubeDns), { ip: '10.96.0.10', port: 5353 });
  assert.deepEqual(dnsFromKubeDnsService({ spec: { clusterIP: 'fd10:96::a' } }), { ip: 'fd10:96::a', port: 53 });
  assert.equal(dnsFromKubeDnsService({ spec: { clusterIP: 'None' } }), undefined);
  assert.equal(dnsFromKubeDnsService(undefined), undefined);
});

test('resolv.conf of a pod: nameserver, and the cluster domain from the search list', () => {
  const conf = '# written by the kubelet\nsearch shop.svc.corp.example svc.corp.example corp.example\nnameserver 10.96.0.10\noptions ndots:5\n';
  assert.deepEqual(dnsFromResolvConf(conf), { ip: '10.96.0.10', port: 53 });
  assert.equal(clusterDomainFromResolvConf(conf, 'shop'), 'corp.example');
  assert.equal(clusterDomainFromResolvConf(conf, 'other'), 'corp.example');
  assert.equal(clusterDomainFromResolvConf(conf, undefined), 'corp.example');
  assert.equal(clusterDomainFromResolvConf('search example.com\nnameserver 1.1.1.1\n', 'shop'), undefined);
  assert.equal(dnsFromResolvConf('search a\n'), undefined);
  // A namespace whose name looks like a domain part must not confuse the search.
  assert.equal(clusterDomainFromResolvConf('search svc.svc.cluster.local svc.cluster.local cluster.local\n', 'svc'), 'cluster.local');
});

test('cluster domain from the reverse name of the kubernetes Service', () => {
  assert.equal(clusterDomainFromServiceName(['kubernetes.default.svc.cluster.local.']), 'cluster.local');
  assert.equal(clusterDomainFromServiceName(['other.name', 'Kubernetes.Default.Svc.Corp.Example']), 'corp.example');
  assert.equal(clusterDomainFromServiceName(['kubernetes.default.svc']), undefined);
});

test('mock DNS server on loopback: the domain comes from the PTR name of the kubernetes Service IP', async (t) => {
  const server = dgram.createSocket('udp4');
  const asked: string[] = [];
  server.on('message', (packet, peer) => {
    const query = parseDnsMessage(packet);
    const question = query.questions[0]!;
    asked.push(`${nameToText(question.name)} ${question.type}`);
    const reply = buildDnsMessage({
      id: query.id,
      flags: DnsFlag.QR | DnsFlag.RD | DnsFlag.RA,
      questions: query.questions,
      answers: [{ name: question.name, type: DnsType.PTR, class: 1, ttl: 5, data: nameBytes(textToName('kubernetes.default.svc.corp.example')) }],
      authorities: [],
      additionals: [],
    });
    server.send(reply, peer.port, peer.address);
  });
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  let open = true;
  t.after(() => open && server.close());
  const dns = { ip: '127.0.0.1', port: server.address().port };
  assert.equal(await clusterDomainByReverseLookup(dns, '10.96.0.1'), 'corp.example');
  assert.deepEqual(asked, [`1.0.96.10.in-addr.arpa ${DnsType.PTR}`]);
  // Nothing listens any more: undefined, not an error.
  server.close();
  open = false;
  assert.equal(await clusterDomainByReverseLookup(dns, '10.96.0.1', 200), undefined);
});
