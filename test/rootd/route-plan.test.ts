import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPrefix, parseIp, parsePrefix, prefixContains } from '../../src/netstack/wire/ip-address.js';
import type { RouteEntry } from '../../src/rootd/link-config.js';
import { planRoutes, RouteConflictError, type RoutePolicy } from '../../src/rootd/route-plan.js';

const p = (s: string) => parsePrefix(s);
const none: RoutePolicy = { alsoProxy: [], neverProxy: [], allowConflicting: [] };
const LAPTOP: RouteEntry[] = [
  { family: 4, dst: '0.0.0.0/0', dev: 'eth0', gateway: '192.168.1.1' },
  { family: 4, dst: '192.168.1.0/24', dev: 'eth0' },
  { family: 6, dst: 'fe80::/64', dev: 'eth0' },
  { family: 4, dst: '10.96.0.0/12', dev: 'kt0' },
];
const CLUSTER = [p('10.244.0.0/16'), p('10.96.0.0/12'), p('fd10:96::/112')];

test('cluster subnets that overlap no local route are routed as they are (own device and default route ignored)', () => {
  assert.deepEqual(planRoutes(CLUSTER, LAPTOP, 'kt0', none).map(formatPrefix), ['10.244.0.0/16', '10.96.0.0/12', 'fd10:96::/112']);
});

test('an overlap is refused with both routes and the three flags named', () => {
  const vpn: RouteEntry = { family: 4, dst: '10.0.0.0/8', dev: 'tun-vpn' };
  assert.throws(
    () => planRoutes(CLUSTER, [...LAPTOP, vpn], 'kt0', none),
    (error: unknown) => {
      assert.ok(error instanceof RouteConflictError);
      assert.equal(error.conflicts.length, 2);
      assert.match(error.message, /cluster subnet 10\.244\.0\.0\/16 overlaps the local route 10\.0\.0\.0\/8 \(dev tun-vpn\)/);
      assert.match(error.message, /--allow-conflicting-subnets 10\.244\.0\.0\/16/);
      assert.match(error.message, /--never-proxy CIDR/);
      assert.match(error.message, /--also-proxy CIDR/);
      return true;
    },
  );
});

test('a more specific local route inside a cluster subnet is a conflict too', () => {
  assert.throws(() => planRoutes(CLUSTER, [{ family: 4, dst: '10.96.5.0/24', dev: 'eth1' }], 'kt0', none), RouteConflictError);
});

test('--allow-conflicting-subnets routes the subnet anyway', () => {
  const routes = planRoutes(CLUSTER, [{ family: 4, dst: '10.0.0.0/8', dev: 'vpn' }], 'kt0', { ...none, allowConflicting: [p('10.0.0.0/8')] });
  assert.equal(routes.length, 3);
});

test('--never-proxy carves the subnet out, which can also resolve a conflict', () => {
  const routes = planRoutes([p('10.96.0.0/12')], [{ family: 4, dst: '10.96.0.0/13', dev: 'eth1' }], 'kt0', { ...none, neverProxy: [p('10.96.0.0/13')] });
  assert.deepEqual(routes.map(formatPrefix), ['10.104.0.0/13']);
});

test('--also-proxy adds a subnet; one covered by another is not routed twice', () => {
  const routes = planRoutes([p('10.96.0.0/12')], [], 'kt0', { ...none, alsoProxy: [p('172.20.0.0/16'), p('10.96.1.0/24'), p('10.96.0.0/12')] });
  assert.deepEqual(routes.map(formatPrefix), ['10.96.0.0/12', '172.20.0.0/16']);
});

test('a conflict with a route of another table (a VPN\'s policy routing) names that table', () => {
  const vpn: RouteEntry = { family: 4, dst: '10.0.0.0/8', dev: 'wg0', table: '51820' };
  assert.throws(() => planRoutes(CLUSTER, [vpn], 'kt0', none), /overlaps the local route 10\.0\.0\.0\/8 \(dev wg0 table 51820\)/);
});

test('--never-proxy host addresses (the tunnel\'s own endpoints) are carved out of a cluster subnet that holds them', () => {
  const routes = planRoutes([p('10.96.0.0/12')], [], 'kt0', { ...none, neverProxy: [p('10.96.0.1/32')] });
  assert.equal(routes.length, 20);
  assert.ok(!routes.some((r) => prefixContains(r, parseIp('10.96.0.1'))));
  assert.ok(routes.some((r) => prefixContains(r, parseIp('10.96.0.2'))));
});
