import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { prefixesOverlap } from '../../src/net/prefixes.js';
import { parseRoutes } from '../../src/rootd/link-config.js';
import { checkNoRouteOverlap, findRouteOverlaps, type HostRoute } from '../../src/sandbox/host-routes.js';
import { sandboxConfig, sandboxRanges } from '../../src/sandbox/sandbox-config.js';
import { SandboxError } from '../../src/sandbox/sandbox-errors.js';

const RANGES = sandboxRanges(sandboxConfig());

function route(dst: string, extra: Partial<HostRoute> = {}): HostRoute {
  return { family: dst.includes(':') ? 6 : 4, dst, ...extra };
}

test('a host route inside, around or equal to a sandbox range is an overlap', () => {
  const routes = [route('10.96.5.0/24', { dev: 'eth1' }), route('10.0.0.0/8', { dev: 'tun0' }), route('2001:2::/32'), route('fd10:244::/56')];
  const found = findRouteOverlaps(RANGES, routes).map((o) => `${o.range} ${o.route.dst}`);
  assert.deepEqual(found.sort(), [
    '10.244.0.0/16 10.0.0.0/8',
    '10.96.0.0/16 10.0.0.0/8',
    '10.96.0.0/16 10.96.5.0/24',
    '2001:2::/64 2001:2::/32',
    'fd10:244::/56 fd10:244::/56',
  ]);
});

test('default routes, kernel local/broadcast routes and routes elsewhere are not overlaps', () => {
  const routes = [
    route('0.0.0.0/0', { dev: 'eth0' }),
    route('::/0', { dev: 'eth0' }),
    route('192.0.2.0/24'),
    route('fd00::/64'),
    route('fe80::/64'),
    route('10.112.0.0/12'),
    route('10.244.0.5/32', { type: 'local', table: 'local' }),
    route('198.18.0.3/32', { type: 'broadcast', table: 'local' }),
    route('198.18.0.4/30'),
  ];
  assert.deepEqual(findRouteOverlaps(RANGES, routes), []);
  assert.doesNotThrow(() => checkNoRouteOverlap(RANGES, routes));
});

test('the refusal names the sandbox range and the host route with its device', () => {
  assert.throws(
    () => checkNoRouteOverlap(RANGES, [route('198.18.0.0/15', { dev: 'eth2' })]),
    (e: unknown) =>
      e instanceof SandboxError &&
      e.code === 'ROUTE_OVERLAP' &&
      e.message.includes('198.18.0.0/30') &&
      e.message.includes('198.18.0.0/15 dev eth2'),
  );
});

test('parses ip -j route show table all output, default, host and local-table routes included', () => {
  const v4 = JSON.stringify([
    { dst: 'default', gateway: '192.0.2.1', dev: 'eth0', flags: [] },
    { dst: '192.0.2.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.2', flags: [] },
    { type: 'local', dst: '192.0.2.2', table: 'local', dev: 'eth0', flags: [] },
  ]);
  assert.deepEqual(parseRoutes(v4, 4), [
    { family: 4, dst: '0.0.0.0/0', gateway: '192.0.2.1', dev: 'eth0' },
    { family: 4, dst: '192.0.2.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.2' },
    { family: 4, dst: '192.0.2.2/32', type: 'local', dev: 'eth0', table: 'local' },
  ]);
  assert.deepEqual(parseRoutes(JSON.stringify([{ dst: 'default', dev: 'eth0' }]), 6), [{ family: 6, dst: '::/0', dev: 'eth0' }]);
  assert.deepEqual(parseRoutes('', 6), []);
});

test('prefix overlap agrees with intersecting address intervals (IPv4)', () => {
  const prefix = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }));
  const text = ([addr, len]: [number, number]): string =>
    `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/${len}`;
  const interval = ([addr, len]: [number, number]): [number, number] => {
    const size = 2 ** (32 - len);
    const start = Math.floor(addr / size) * size;
    return [start, start + size - 1];
  };
  fc.assert(
    fc.property(prefix, prefix, (a, b) => {
      const [a0, a1] = interval(a);
      const [b0, b1] = interval(b);
      const expected = a0 <= b1 && b0 <= a1;
      assert.equal(prefixesOverlap(parsePrefix(text(a)), parsePrefix(text(b))), expected);
      assert.equal(prefixesOverlap(parsePrefix(text(b)), parsePrefix(text(a))), expected);
    }),
  );
  assert.equal(prefixesOverlap(parsePrefix('10.0.0.0/8'), parsePrefix('fd10::/16')), false);
});
