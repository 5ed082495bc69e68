import { test } from 'node:test';
import assert from 'node:assert/strict';
import { servicesRuleset, NFT_TABLE } from '../../src/sandbox/services.js';
import { findBinary } from '../../src/sandbox/host-commands.js';
import { podsOf, sandboxConfig } from '../../src/sandbox/sandbox-config.js';
import { TestNetns } from '../helpers/netns.js';

const config = sandboxConfig('kts2');
const ruleset = servicesRuleset(config);

test('the ruleset replaces its own table, and only it, in one transaction', () => {
  const lines = ruleset.split('\n');
  assert.deepEqual(lines.slice(0, 3), [`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`]);
  assert.equal(lines.filter((l) => /^table /.test(l)).length, 2);
});

test('a service with two endpoints picks one with numgen; each endpoint DNATs to its pod, on both families', () => {
  const [a, b] = podsOf(config, 'echo');
  assert.match(ruleset, /ip daddr 10\.96\.0\.20 tcp dport 80 goto (\S+)/);
  assert.match(ruleset, /ip6 daddr fd10:96::14 tcp dport 80 goto (\S+)/);
  assert.match(ruleset, /numgen random mod 2 vmap \{ 0 : goto \S+, 1 : goto \S+ \}/);
  for (const pod of [a!, b!]) {
    assert.ok(ruleset.includes(`meta l4proto tcp dnat ip to ${pod.ipv4}:80`), pod.name);
    assert.ok(ruleset.includes(`meta l4proto tcp dnat ip6 to [${pod.ipv6}]:80`), pod.name);
  }
});

test('kube-dns answers on UDP and TCP 53; iperf on TCP and UDP 5201', () => {
  const dns = podsOf(config, 'coredns')[0]!;
  assert.ok(ruleset.includes('ip daddr 10.96.0.10 udp dport 53 goto'));
  assert.ok(ruleset.includes('ip daddr 10.96.0.10 tcp dport 53 goto'));
  assert.ok(ruleset.includes('ip6 daddr fd10:96::a udp dport 53 goto'));
  assert.ok(ruleset.includes(`meta l4proto udp dnat ip to ${dns.ipv4}:53`));
  assert.ok(ruleset.includes('ip daddr 10.96.0.22 udp dport 5201 goto'));
});

test("the node port 30081 on the node's link addresses leads to the manager pod's 8081", () => {
  const manager = podsOf(config, 'traffic-manager')[0]!;
  assert.ok(ruleset.includes('ip daddr 198.18.0.1 tcp dport 30081 goto'));
  assert.ok(ruleset.includes('ip6 daddr 2001:2::1 tcp dport 30081 goto'));
  assert.ok(ruleset.includes(`dnat ip to ${manager.ipv4}:8081`));
  assert.ok(ruleset.includes(`dnat ip6 to [${manager.ipv6}]:8081`));
});

test('only a pod reaching itself through a service is masqueraded', () => {
  const masquerades = ruleset.split('\n').filter((l) => l.includes('masquerade'));
  assert.equal(masquerades.length, config.pods.length * 2);
  for (const pod of config.pods) {
    assert.ok(masquerades.some((l) => l.includes(`ip saddr ${pod.ipv4} ip daddr ${pod.ipv4}`)));
    assert.ok(masquerades.some((l) => l.includes(`ip6 saddr ${pod.ipv6} ip6 daddr ${pod.ipv6}`)));
  }
  assert.ok(masquerades.every((l) => l.includes('ct status dnat')));
});

test('nft accepts the ruleset (checked in a scratch namespace)', async (t) => {
  if (process.getuid?.() !== 0 || findBinary('nft') === null) {
    t.skip('needs root and nft');
    return;
  }
  const ns = await TestNetns.create('sbxnft');
  try {
    const result = await ns.exec('nft', ['-c', '-f', '-'], { input: ruleset });
    assert.equal(result.code, 0, result.stderr);
  } finally {
    await ns.destroy();
  }
});
