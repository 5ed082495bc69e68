// The stack's DNS server with packets built by hand (no device). Where a test names a stand-in, it replaces the
// tunnel or the upstream: what is tested is the UDP flow handling and the answer sizes, not resolution.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDnsMessage, DnsFlag, DnsType, parseDnsMessage, textToName, type DnsRecord } from '../../src/dns/dns-message.js';
import { createLogger, silentLogger } from '../../src/log/logger.js';
import { PacketBuilder } from '../../src/netstack/packet-builder.js';
import { NetStack } from '../../src/netstack/stack.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { parseUdp } from '../../src/netstack/wire/udp.js';
import { StackDnsServer } from '../../src/rootd/dns/dns-server.js';
import type { IpAddress } from '../../src/netstack/wire/reprs.js';
import { DnsResolver, MAX_UDP_ANSWER } from '../../src/rootd/dns/dns-resolver.js';

test('each UDP query flow is answered and then closed, so thousands of resolver ports never fill the flow table', async () => {
  const dnsAddress = parseIp('198.18.255.53');
  const stub = { resolve: async (q: Buffer) => Buffer.concat([q, Buffer.from("!")]) } as unknown as DnsResolver;
  const dns = new StackDnsServer(stub, dnsAddress);
  const stack = new NetStack({ mtu: 1500, limits: { maxUdpFlows: 100 } }, { tcpConnect: (r) => r.refuse(), udpFlow: (f) => dns.serveUdp(f) });
  const client = new PacketBuilder({ vnetHeader: false, offload: false });
  const answers: string[] = [];
  for (let port = 10_000; port < 10_500; port++) {
    stack.input(client.udp(parseIp('198.18.0.2'), dnsAddress, { srcPort: port, dstPort: 53, payload: Buffer.from(`q${port}`) }), 0);
    await new Promise((r) => setImmediate(r));
    const out: Buffer[] = [];
    stack.output(0, out);
    for (const packet of out) answers.push(parseUdp(parseIpv4(packet).payload, null).payload.toString());
  }
  assert.equal(answers.length, 500);
  assert.equal(answers[499], 'q10499!');
  assert.equal(stack.stats.udpFlows, 0);
  assert.equal(stack.stats.dropped['flow-limit'], undefined);
  assert.equal(dns.queries, 500);
});

/** A UDP query to the server through the stack; the datagrams the stack sends back. */
async function askOverUdp(stack: NetStack, dnsAddress: IpAddress, query: Buffer, port: number): Promise<Buffer[]> {
  const client = new PacketBuilder({ vnetHeader: false, offload: false });
  stack.input(client.udp(parseIp('198.18.0.2'), dnsAddress, { srcPort: port, dstPort: 53, payload: query }), 0);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const out: Buffer[] = [];
  stack.output(0, out);
  return out.map((packet) => parseUdp(parseIpv4(packet).payload, null).payload);
}

function txtQuery(bufsize: number): Buffer {
  const opt: DnsRecord = { name: [], type: DnsType.OPT, class: bufsize, ttl: 0, data: Buffer.alloc(0) };
  return buildDnsMessage({ id: 77, flags: DnsFlag.RD, questions: [{ name: textToName('big.example'), type: DnsType.TXT, class: 1 }], answers: [], authorities: [], additionals: [opt] });
}

test('a ~64 KiB answer to `dig +bufsize=65535` over UDP comes back truncated (TC) and the server goes on', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    // The upstream: the real resolver's upstream hook answering with one TXT record of ~64 KiB.
    const upstream = async (q: Buffer): Promise<Buffer> => {
      const m = parseDnsMessage(q);
      const strings = Array.from({ length: 258 }, () => Buffer.concat([Buffer.from([250]), Buffer.alloc(250, 0x78)]));
      return buildDnsMessage({ ...m, flags: DnsFlag.QR | DnsFlag.RA, answers: [{ name: m.questions[0]!.name, type: DnsType.TXT, class: 1, ttl: 60, data: Buffer.concat(strings) }] });
    };
    const resolver = new DnsResolver({ cluster: () => null, upstream, facts: () => ({ clusterDomain: 'cluster.local', subnets: [] }) });
    const dnsAddress = parseIp('198.18.255.53');
    const dns = new StackDnsServer(resolver, dnsAddress, silentLogger);
    const stack = new NetStack({ mtu: 65_000 }, { tcpConnect: (r) => r.refuse(), udpFlow: (f) => dns.serveUdp(f) });
    for (const [i, bufsize] of [65535, 1232].entries()) {
      const replies = await askOverUdp(stack, dnsAddress, txtQuery(bufsize), 20_000 + i);
      assert.equal(replies.length, 1);
      const reply = parseDnsMessage(replies[0]!);
      assert.ok(replies[0]!.length <= Math.min(bufsize, MAX_UDP_ANSWER));
      assert.ok((reply.flags & DnsFlag.TC) !== 0);
      assert.equal(reply.id, 77);
    }
    assert.equal(dns.failures, 0);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a failure while answering is counted and logged once a second, never an unhandled rejection (resolver stand-in that breaks its promise)', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const broken = { resolve: async () => Promise.reject(new Error('boom')) } as unknown as DnsResolver;
    const logged: string[] = [];
    const dnsAddress = parseIp('198.18.255.53');
    const dns = new StackDnsServer(broken, dnsAddress, createLogger('debug', (line) => logged.push(line)));
    const stack = new NetStack({ mtu: 1500 }, { tcpConnect: (r) => r.refuse(), udpFlow: (f) => dns.serveUdp(f) });
    for (let port = 30_000; port < 30_010; port++) assert.deepEqual(await askOverUdp(stack, dnsAddress, txtQuery(512), port), []);
    assert.equal(dns.failures, 10);
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /boom/);
    assert.equal(stack.stats.udpFlows, 0, 'each flow is closed even when its query failed');
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
