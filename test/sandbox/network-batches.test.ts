import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NODE_SYSCTLS, nodeBaseBatch, podBatch, podNodeSideBatch, workstationBatch } from '../../src/sandbox/network.js';
import { formatTarget, parseTarget } from '../../src/sandbox/readiness-probe.js';
import { sandboxConfig } from '../../src/sandbox/sandbox-config.js';

const config = sandboxConfig('kts3');

test('the workstation gets its link addresses and nothing that routes to pods or services', () => {
  const lines = workstationBatch(config);
  assert.ok(lines.includes('addr add 198.18.0.2/30 dev eth0'));
  assert.ok(lines.includes('addr add 2001:2::2/64 dev eth0 nodad'));
  assert.ok(!lines.some((l) => l.startsWith('route')));
});

test('the node gets the bridge gateways and its end of the workstation link, created straight into the workstation', () => {
  const lines = nodeBaseBatch(config);
  assert.ok(lines.includes('addr add 10.244.0.1/24 dev ktbr0'));
  assert.ok(lines.includes('addr add fd10:244::1/64 dev ktbr0 nodad'));
  assert.ok(lines.includes('link add ws0 type veth peer name eth0 netns kts3-workstation'));
  assert.ok(lines.includes('addr add 198.18.0.1/30 dev ws0'));
  assert.ok(NODE_SYSCTLS.includes('net.ipv4.ip_forward=1'));
  assert.ok(NODE_SYSCTLS.includes('net.bridge.bridge-nf-call-iptables=0'));
});

test('a pod has host addresses and on-link default routes via the bridge, its veth plugged into the bridge', () => {
  const pod = config.pods[1]!;
  assert.deepEqual(podBatch(config, pod).slice(1), [
    `addr add ${pod.ipv4}/32 dev eth0`,
    `addr add ${pod.ipv6}/128 dev eth0 nodad`,
    'link set eth0 up',
    'route add default via 10.244.0.1 dev eth0 onlink',
    'route add default via fd10:244::1 dev eth0 onlink',
  ]);
  const node = podNodeSideBatch(config, pod);
  assert.equal(node[0], `link add ${pod.nodeInterface} type veth peer name eth0 netns ${pod.netns}`);
  assert.ok(node.includes(`link set ${pod.nodeInterface} master ktbr0`));
  assert.ok(node.includes(`neigh flush to ${pod.ipv4}`));
});

test('probe targets survive format and parse, with and without a pid', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6()),
      fc.integer({ min: 1, max: 65535 }),
      fc.option(fc.integer({ min: 1, max: 4_194_304 }), { nil: undefined }),
      (host, port, pid) => {
        const target = pid === undefined ? { host, port } : { host, port, pid };
        assert.deepEqual(parseTarget(formatTarget(target)), target);
      },
    ),
  );
  assert.throws(() => parseTarget('10.0.0.1'));
});
