import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NFT_TABLE, renderRuleset, type ClusterIPSpace, type ProxyService } from '../../../src/sandbox/kube-proxy/ruleset.js';
import { findBinary } from '../../../src/sandbox/host-commands.js';
import { probeConnections } from '../../helpers/connect-probe.js';
import { TestNetns } from '../../helpers/netns.js';

const echo: ProxyService = {
  name: 'svc-default-echo-tcp-80',
  protocol: 'tcp',
  frontends: [
    { address: '10.96.0.20', port: 80 },
    { address: 'fd10:96::14', port: 80 },
  ],
  endpoints: [
    { address: '10.244.0.11', port: 8080 },
    { address: 'fd10:244::11', port: 8080 },
    { address: '10.244.0.12', port: 8080 },
    { address: 'fd10:244::12', port: 8080 },
  ],
};
const dns: ProxyService = {
  name: 'svc-kube-system-kube-dns-udp-53',
  protocol: 'udp',
  frontends: [{ address: '10.96.0.10', port: 53 }],
  endpoints: [{ address: '10.244.0.10', port: 53 }],
};
const manager: ProxyService = {
  name: 'svc.kubetun.traffic-manager.tcp.8081',
  protocol: 'tcp',
  frontends: [
    { address: '10.96.0.100', port: 8081 },
    { address: '198.18.0.1', port: 30081 },
    { address: '2001:2::1', port: 30081 },
  ],
  endpoints: [{ address: '10.244.0.15', port: 8081 }],
};
const empty: ProxyService = {
  name: 'svc-default-gone-tcp-80',
  protocol: 'tcp',
  frontends: [
    { address: '10.96.0.30', port: 80 },
    { address: 'fd10:96::1e', port: 80 },
  ],
  endpoints: [],
};
const emptyUdp: ProxyService = { name: 'svc-default-gone-udp-53', protocol: 'udp', frontends: [{ address: '10.96.0.30', port: 53 }], endpoints: [] };
const space: ClusterIPSpace = {
  clusterIPs: ['10.96.0.20', 'fd10:96::14', '10.96.0.10', '10.96.0.100', '10.96.0.30', 'fd10:96::1e', '10.96.0.30'],
  serviceCidrs: ['10.96.0.0/16', 'fd10:96::/112'],
};
const noSpace: ClusterIPSpace = { clusterIPs: [], serviceCidrs: [] };
const ruleset = renderRuleset(NFT_TABLE, [echo, dns, manager, empty, emptyUdp], space);

/** The lines of a chain or set of the ruleset, trimmed. */
function block(text: string, kind: 'chain' | 'set', name: string): string[] {
  const body = new RegExp(`\\n  ${kind} ${name.replace(/\./g, '\\.')} \\{\\n([\\s\\S]*?)\\n  \\}`).exec(text)?.[1];
  assert.ok(body !== undefined, `${kind} ${name} is in the ruleset`);
  return body.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

test('the ruleset replaces its own table, and only it, in one transaction', () => {
  const lines = ruleset.split('\n');
  assert.deepEqual(lines.slice(0, 3), [`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`]);
  assert.equal(lines.filter((l) => /^table /.test(l)).length, 2);
});

test('a service with two endpoints picks one with numgen; each endpoint DNATs, on both families', () => {
  assert.match(ruleset, /ip daddr 10\.96\.0\.20 tcp dport 80 goto svc-default-echo-tcp-80-ipv4\n/);
  assert.match(ruleset, /ip6 daddr fd10:96::14 tcp dport 80 goto svc-default-echo-tcp-80-ipv6\n/);
  assert.match(ruleset, /chain svc-default-echo-tcp-80-ipv4 \{\n {4}numgen random mod 2 vmap \{ 0 : goto \S+, 1 : goto \S+ \}/);
  for (const ip of ['10.244.0.11', '10.244.0.12']) assert.ok(ruleset.includes(`meta l4proto tcp dnat ip to ${ip}:8080`), ip);
  for (const ip of ['fd10:244::11', 'fd10:244::12']) assert.ok(ruleset.includes(`meta l4proto tcp dnat ip6 to [${ip}]:8080`), ip);
});

test('one endpoint: a plain goto; UDP frontends match udp', () => {
  assert.ok(ruleset.includes('ip daddr 10.96.0.10 udp dport 53 goto svc-kube-system-kube-dns-udp-53-ipv4'));
  assert.match(ruleset, /chain svc-kube-system-kube-dns-udp-53-ipv4 \{\n {4}goto svc-kube-system-kube-dns-udp-53-ipv4-ep0\n/);
  assert.ok(ruleset.includes('meta l4proto udp dnat ip to 10.244.0.10:53'));
});

test('ClusterIP and node-port frontends share the chain; a family without endpoints is refused', () => {
  assert.ok(ruleset.includes('ip daddr 10.96.0.100 tcp dport 8081 goto svc.kubetun.traffic-manager.tcp.8081-ipv4'));
  assert.ok(ruleset.includes('ip daddr 198.18.0.1 tcp dport 30081 goto svc.kubetun.traffic-manager.tcp.8081-ipv4'));
  assert.ok(ruleset.includes('ip6 daddr 2001:2::1 tcp dport 30081 reject with tcp reset'));
});

test('a service without endpoints is refused in the filter hooks: TCP with a reset, UDP with port-unreachable', () => {
  const noEndpoints = /chain no-endpoints \{\n([^}]*)\}/.exec(ruleset)?.[1] ?? '';
  assert.ok(noEndpoints.includes('ip daddr 10.96.0.30 tcp dport 80 reject with tcp reset'));
  assert.ok(noEndpoints.includes('ip6 daddr fd10:96::1e tcp dport 80 reject with tcp reset'));
  assert.ok(noEndpoints.includes('ip daddr 10.96.0.30 udp dport 53 reject\n'));
  assert.ok(!/daddr 10\.96\.0\.30 .* goto/.test(ruleset));
  for (const hook of ['input', 'forward', 'output']) {
    assert.match(ruleset, new RegExp(`chain filter-${hook} \\{\\n {4}type filter hook ${hook} priority filter; policy accept;\\n {4}jump no-endpoints`));
  }
});

test('after DNAT, an allocated ClusterIP refuses the ports no service defines: TCP with a reset, the rest port-unreachable; the rest of the service CIDRs is dropped', () => {
  assert.deepEqual(block(ruleset, 'set', 'cluster-ips-v4'), ['type ipv4_addr', 'elements = { 10.96.0.20, 10.96.0.10, 10.96.0.100, 10.96.0.30 }']);
  assert.deepEqual(block(ruleset, 'set', 'cluster-ips-v6'), ['type ipv6_addr', 'elements = { fd10:96::14, fd10:96::1e }']);
  assert.deepEqual(block(ruleset, 'chain', 'cluster-ips-check'), [
    'ip daddr @cluster-ips-v4 meta l4proto tcp reject with tcp reset',
    'ip daddr @cluster-ips-v4 reject',
    'ip6 daddr @cluster-ips-v6 meta l4proto tcp reject with tcp reset',
    'ip6 daddr @cluster-ips-v6 reject',
    'ip daddr 10.96.0.0/16 drop',
    'ip6 daddr fd10:96::/112 drop',
  ]);
  // The ports a service defines without endpoints are refused first, as before; ClusterIPs are never local.
  for (const hook of ['forward', 'output']) {
    assert.deepEqual(block(ruleset, 'chain', `filter-${hook}`).slice(1), ['jump no-endpoints', 'ct state new jump cluster-ips-check'], hook);
  }
  assert.deepEqual(block(ruleset, 'chain', 'filter-input').slice(1), ['jump no-endpoints']);
});

test("node addresses are no ClusterIPs: only their NodePorts are the services', their other ports stay the node's", () => {
  const guarded = [...block(ruleset, 'set', 'cluster-ips-v4'), ...block(ruleset, 'set', 'cluster-ips-v6'), ...block(ruleset, 'chain', 'cluster-ips-check')].join('\n');
  for (const node of ['198.18.0.1', '2001:2::1']) assert.ok(!guarded.includes(node), node);
});

test('no ClusterIPs: empty sets; no service CIDRs: nothing is dropped; CIDRs are written with host bits cleared', () => {
  const bare = renderRuleset(NFT_TABLE, [dns], noSpace);
  assert.deepEqual(block(bare, 'set', 'cluster-ips-v4'), ['type ipv4_addr']);
  assert.deepEqual(block(bare, 'set', 'cluster-ips-v6'), ['type ipv6_addr']);
  assert.ok(!block(bare, 'chain', 'cluster-ips-check').some((l) => l.endsWith('drop')));
  const sloppy = renderRuleset(NFT_TABLE, [dns], { clusterIPs: [], serviceCidrs: ['10.96.0.1/16'] });
  assert.ok(block(sloppy, 'chain', 'cluster-ips-check').includes('ip daddr 10.96.0.0/16 drop'));
});

test('only an endpoint reaching itself through a service is masqueraded, once per address', () => {
  const masquerades = ruleset.split('\n').filter((l) => l.includes('masquerade'));
  assert.deepEqual(
    masquerades.map((l) => l.trim()),
    ['10.244.0.11', 'fd10:244::11', '10.244.0.12', 'fd10:244::12', '10.244.0.10', '10.244.0.15'].map((a) => {
      const ip = a.includes(':') ? 'ip6' : 'ip';
      return `ct status dnat ${ip} saddr ${a} ${ip} daddr ${a} masquerade`;
    }),
  );
});

test('ICMP redirects from the node are dropped', () => {
  assert.match(ruleset, /chain no-redirects \{\n.*hook output.*\n {4}icmp type redirect drop\n {4}icmpv6 type nd-redirect drop/);
});

test('bad input is refused with a message naming it', () => {
  assert.throws(() => renderRuleset(NFT_TABLE, [echo, echo], space), /two services are both named "svc-default-echo-tcp-80"/);
  assert.throws(() => renderRuleset(NFT_TABLE, [{ ...dns, name: 'a b' }], space), /"a b" cannot name an nftables chain/);
  assert.throws(() => renderRuleset(NFT_TABLE, [{ ...dns, frontends: [{ address: '10.96.0', port: 53 }] }], space), /"10\.96\.0" is not an IP address/);
  assert.throws(() => renderRuleset(NFT_TABLE, [dns], { clusterIPs: ['10.96.0.300'], serviceCidrs: [] }), /"10\.96\.0\.300" is not an IP address/);
  assert.throws(() => renderRuleset(NFT_TABLE, [dns], { clusterIPs: [], serviceCidrs: ['10.96.0.0/33'] }), /"10\.96\.0\.0\/33" is not an IP address or prefix/);
});

test('property: every frontend is either dispatched to a chain or refused, never both', () => {
  const ipv4 = fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 })).map(([a, b]) => `10.96.${a}.${b}`);
  const endpoint = fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 65535 })).map(([h, port]) => ({ address: `10.244.0.${h}`, port }));
  const service = fc.record({
    protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
    address: ipv4,
    port: fc.integer({ min: 1, max: 65535 }),
    endpoints: fc.array(endpoint, { maxLength: 4 }),
  });
  fc.assert(
    fc.property(fc.uniqueArray(service, { selector: (s) => `${s.address}/${s.protocol}/${s.port}`, maxLength: 6 }), (specs) => {
      const services = specs.map((s, i): ProxyService => ({
        name: `svc-${i}`,
        protocol: s.protocol,
        frontends: [{ address: s.address, port: s.port }],
        endpoints: s.endpoints,
      }));
      const text = renderRuleset('t', services, noSpace);
      for (const s of services) {
        const m = `ip daddr ${s.frontends[0]!.address} ${s.protocol} dport ${s.frontends[0]!.port} `;
        const dispatched = text.includes(`${m}goto ${s.name}-ipv4\n`);
        const refused = text.includes(`${m}reject`);
        assert.equal(dispatched, s.endpoints.length > 0);
        assert.equal(refused, s.endpoints.length === 0);
        const chain = new RegExp(`chain ${s.name}-ipv4-ep\\d+ `, 'g');
        assert.equal(text.match(chain)?.length ?? 0, s.endpoints.length);
      }
    }),
  );
});

test('nft accepts the ruleset, and deletes it again (checked in a scratch namespace)', async (t) => {
  if (process.getuid?.() !== 0 || findBinary('nft') === null) {
    t.skip('needs root and nft');
    return;
  }
  const ns = await TestNetns.create('kpnft');
  try {
    const loaded = await ns.exec('nft', ['-f', '-'], { input: ruleset });
    assert.equal(loaded.code, 0, loaded.stderr);
    const reloaded = await ns.exec('nft', ['-f', '-'], { input: renderRuleset(NFT_TABLE, [dns], noSpace) });
    assert.equal(reloaded.code, 0, reloaded.stderr);
    const listed = await ns.exec('nft', ['list', 'table', 'inet', NFT_TABLE]);
    assert.ok(!listed.stdout.includes('10.96.0.20'), 'the reload replaced the old rules');
    assert.ok(listed.stdout.includes('10.96.0.10'));
  } finally {
    await ns.destroy();
  }
});

test('in a scratch namespace: an undefined port of a ClusterIP is refused at once on both families, an unallocated address is dropped, a node address keeps its own ports', async (t) => {
  if (process.getuid?.() !== 0 || findBinary('nft') === null) {
    t.skip('needs root and nft');
    return;
  }
  const ns = await TestNetns.create('kpreject');
  try {
    // The service CIDRs lead to a veth where no one answers for them: what the ruleset lets pass times out.
    for (const args of [
      ['link', 'add', 'svc0', 'type', 'veth', 'peer', 'name', 'svc1'],
      ['link', 'set', 'svc0', 'up'],
      ['link', 'set', 'svc1', 'up'],
      ['route', 'add', '10.96.0.0/16', 'dev', 'svc0'],
      ['-6', 'route', 'add', 'fd10:96::/112', 'dev', 'svc0'],
      ['addr', 'add', '198.18.0.1/32', 'dev', 'lo'],
    ]) {
      const r = await ns.exec('ip', args);
      assert.equal(r.code, 0, r.stderr);
    }
    const loaded = await ns.exec('nft', ['-f', '-'], { input: ruleset });
    assert.equal(loaded.code, 0, loaded.stderr);
    const node = ns.spawn(process.execPath, ['-e', "require('node:net').createServer((s) => s.end()).listen(4000, '198.18.0.1', () => console.log('up'))"]);
    await new Promise((resolve) => node.stdout?.once('data', resolve));
    const outcomes = await probeConnections((cmd, args) => ns.exec(cmd, args), [
      { protocol: 'tcp', host: '10.96.0.20', port: 81 },
      { protocol: 'tcp', host: 'fd10:96::14', port: 81 },
      { protocol: 'udp', host: '10.96.0.10', port: 54 },
      { protocol: 'udp', host: 'fd10:96::14', port: 54 },
      { protocol: 'tcp', host: '10.96.0.99', port: 80 },
      { protocol: 'tcp', host: 'fd10:96::99', port: 80 },
      { protocol: 'tcp', host: '198.18.0.1', port: 4000 },
    ], 1_000);
    const [v4, v6, udp4, udp6, unallocated4, unallocated6, nodePort] = outcomes;
    for (const [what, o] of Object.entries({ v4, v6, udp4, udp6 })) {
      assert.equal(o?.outcome, 'ECONNREFUSED', what);
      assert.ok(o.ms < 300, `${what} refused after ${o.ms} ms`);
    }
    // Dropped, as kube-proxy does: no one holds the address, so nothing may answer for it.
    assert.deepEqual([unallocated4?.outcome, unallocated6?.outcome], ['timeout', 'timeout'], JSON.stringify(outcomes));
    assert.equal(nodePort?.outcome, 'connected');
  } finally {
    await ns.destroy();
  }
});
