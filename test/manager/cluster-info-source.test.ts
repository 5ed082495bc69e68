// ClusterInfoSource's change detection and what a session is sent of the facts (the namespaces for DNS routing).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterInfoSource, type ClusterFacts } from '../../src/manager/cluster-info-source.js';
import { clusterInfoFor } from '../../src/manager/control-service.js';
import { parseIp, parsePrefix } from '../../src/netstack/wire/ip-address.js';
import type { ClientSession } from '../../src/manager/session-registry.js';

const facts: ClusterFacts = { podCidrs: [parsePrefix('10.244.0.0/16')], serviceCidrs: [parsePrefix('10.96.0.0/12')], dns: undefined, clusterDomain: 'cluster.local' };

test('a change of the namespaces or the node addresses is a change; the same values again are not', () => {
  const source = new ClusterInfoSource(facts);
  const revisions: number[] = [];
  source.on('change', (snapshot) => revisions.push(snapshot.revision));
  source.update({ namespaces: ['default'] });
  source.update({ namespaces: ['default'] });
  source.update({ namespaces: ['default', 'shop'] });
  source.update({ namespaces: [] });
  source.update({ nodeAddresses: [parseIp('198.18.0.1')] });
  source.update({ nodeAddresses: [parseIp('198.18.0.1')] });
  source.update({ nodeAddresses: [parseIp('198.18.0.1'), parseIp('fd10::1')] });
  assert.deepEqual(revisions, [2, 3, 4, 5, 6]);
});

test('clusterInfoFor sends the namespaces in dns.namespaces (none when not discovered)', () => {
  const session = { client: { namespace: 'shop' } } as ClientSession;
  const withNames = clusterInfoFor({ facts: { ...facts, namespaces: ['default', 'shop'] }, revision: 3 }, session, '1');
  assert.deepEqual(withNames.dns?.namespaces, ['default', 'shop']);
  assert.deepEqual(clusterInfoFor({ facts, revision: 1 }, session, '1').dns?.namespaces, []);
});
