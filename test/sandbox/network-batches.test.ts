import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NODE_SYSCTLS, nodeBaseBatch, serviceRoutesBatch, workstationBatch } from '../../src/sandbox/network.js';
import { sandboxConfig } from '../../src/sandbox/sandbox-config.js';

const config = sandboxConfig('kts3');

test('the workstation gets its link addresses and nothing that routes to pods or services', () => {
  const lines = workstationBatch(config);
  assert.ok(lines.includes('addr add 198.18.0.2/30 dev eth0'));
  assert.ok(lines.includes('addr add 2001:2::2/64 dev eth0 nodad'));
  assert.ok(!lines.some((l) => l.startsWith('route')));
});

test('the node gets the bridge (no address: the kubelets add theirs) and its end of the workstation link, created straight into the workstation', () => {
  const lines = nodeBaseBatch(config);
  assert.ok(lines.includes('link add ktbr0 type bridge forward_delay 0'));
  assert.ok(!lines.some((l) => l.startsWith('addr') && l.includes('dev ktbr0')));
  assert.ok(lines.includes('link add ws0 type veth peer name eth0 netns kts3-workstation'));
  assert.ok(lines.includes('addr add 198.18.0.1/30 dev ws0'));
  assert.ok(NODE_SYSCTLS.includes('net.ipv4.ip_forward=1'));
  assert.ok(NODE_SYSCTLS.includes('net.bridge.bridge-nf-call-iptables=0'));
});

test('the node routes the service CIDRs (IPv4 and IPv6) onto the pod bridge, after the bridge is up, so kube-proxy can DNAT its own connections', () => {
  const lines = nodeBaseBatch(config);
  assert.deepEqual(serviceRoutesBatch(config), ['route replace 10.96.0.0/16 dev ktbr0', 'route replace fd10:96::/112 dev ktbr0']);
  for (const route of serviceRoutesBatch(config)) assert.ok(lines.indexOf(route) > lines.indexOf('link set ktbr0 up'), route);
  assert.ok(!workstationBatch(config).some((l) => l.includes('10.96.') || l.includes('fd10:96')));
});
