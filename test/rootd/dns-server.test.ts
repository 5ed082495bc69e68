// The stack's DNS server with packets built by hand (no device) and a stub resolver standing in for the
// tunnel and the upstream: what is tested is the UDP flow handling, not resolution.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PacketBuilder } from '../../src/netstack/packet-builder.js';
import { NetStack } from '../../src/netstack/stack.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { parseUdp } from '../../src/netstack/wire/udp.js';
import { StackDnsServer } from '../../src/rootd/dns/dns-server.js';
import type { DnsResolver } from '../../src/rootd/dns/dns-resolver.js';

test('each UDP query flow is answered and then closed, so thousands of resolver ports never fill the flow table', async () => {
  const dnsAddress = parseIp('198.18.255.53');
  const stub = { resolveForUdp: async (q: Buffer) => Buffer.concat([q, Buffer.from('!')]) } as unknown as DnsResolver;
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
