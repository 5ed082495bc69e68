import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  LinkConfigError,
  addAddress,
  addRoute,
  deleteRoute,
  listRoutes,
  parseRoutes,
  parseRuleTables,
  setLinkUp,
  setMtu,
  setTxQueueLen,
  validateMtu,
} from '../../src/rootd/link-config.js';
import { TestNetns, requireRoot } from '../helpers/netns.js';

function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof LinkConfigError && e.code === code;
}

test('validateMtu accepts exactly the integers 1280..65535, and 68..65535 for IPv4-only links', () => {
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: -10, max: 70_000 }), fc.double()), (mtu) => {
      const v4ok = Number.isInteger(mtu) && mtu >= 68 && mtu <= 65535;
      const v6ok = v4ok && mtu >= 1280;
      assert.equal(accepts(() => validateMtu(mtu, { ipv6: false })), v4ok);
      assert.equal(accepts(() => validateMtu(mtu)), v6ok);
    }),
  );
});

function accepts(f: () => void): boolean {
  try {
    f();
    return true;
  } catch (error) {
    assert.ok(isCode('BAD_MTU')(error));
    return false;
  }
}

test('setMtu rejects a bad MTU with BAD_MTU before running ip', async () => {
  await assert.rejects(setMtu('kt0', 67, 'no-such-ns'), (e: unknown) => isCode('BAD_MTU')(e) && /68 to 65535/.test((e as Error).message));
  await assert.rejects(setMtu('kt0', 65536), isCode('BAD_MTU'));
  await assert.rejects(setMtu('kt0', 1500.5), isCode('BAD_MTU'));
  await assert.rejects(setMtu('kt0', 1000), (e: unknown) => isCode('BAD_MTU')(e) && /IPv6.*1280/.test((e as Error).message));
});

test('bad names and CIDRs are refused before running ip', async () => {
  await assert.rejects(setLinkUp('-dash'), isCode('BAD_ARGUMENT'));
  await assert.rejects(setLinkUp('sixteen-chars-xx'), isCode('BAD_ARGUMENT'));
  await assert.rejects(addRoute('10.96.0.0/33', 'kt0'), isCode('BAD_ARGUMENT'));
  await assert.rejects(addRoute('not-an-ip', 'kt0'), isCode('BAD_ARGUMENT'));
  await assert.rejects(addAddress('kt0', 'fd10:96::/129'), isCode('BAD_ARGUMENT'));
  await assert.rejects(setLinkUp('kt0', '../x'), isCode('BAD_ARGUMENT'));
  await assert.rejects(setTxQueueLen('kt0', -1), isCode('BAD_ARGUMENT'));
});

test('parseRoutes turns ip -j output into CIDRs', () => {
  const v4 = parseRoutes(
    '[{"dst":"default","gateway":"198.18.0.1","dev":"eth0","flags":[]},' +
      '{"dst":"198.18.0.7","dev":"kt0","scope":"link","flags":[]},' +
      '{"type":"blackhole","dst":"10.96.0.0/12","flags":[]}]',
    4,
  );
  assert.deepEqual(v4, [
    { family: 4, dst: '0.0.0.0/0', gateway: '198.18.0.1', dev: 'eth0' },
    { family: 4, dst: '198.18.0.7/32', dev: 'kt0', scope: 'link' },
    { family: 4, dst: '10.96.0.0/12', type: 'blackhole' },
  ]);
  assert.deepEqual(parseRoutes('[{"dst":"fd10:96::1","dev":"kt0","metric":1024,"flags":[]}]\n', 6), [
    { family: 6, dst: 'fd10:96::1/128', dev: 'kt0', metric: 1024 },
  ]);
  assert.deepEqual(parseRoutes('', 4), []);
});

test('routes are added, listed and deleted in a namespace', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const ns = await TestNetns.create('link');
  try {
    const exec = await ns.exec('ip', ['tuntap', 'add', 'dev', 'kd0', 'mode', 'tun']);
    assert.equal(exec.code, 0, exec.stderr);
    await setMtu('kd0', 9000, ns.name);
    await setTxQueueLen('kd0', 2000, ns.name);
    await addAddress('kd0', '198.18.7.1/24', ns.name);
    await addAddress('kd0', 'fd10:244::1/64', ns.name);
    await setLinkUp('kd0', ns.name);
    const link = JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', 'kd0'])).stdout) as { mtu: number; txqlen: number; flags: string[] }[];
    assert.equal(link[0].mtu, 9000);
    assert.equal(link[0].txqlen, 2000);
    assert.ok(link[0].flags.includes('UP'));

    await addRoute('10.96.0.0/12', 'kd0', ns.name);
    await addRoute('fd10:96::/112', 'kd0', ns.name);
    const routes = await listRoutes(ns.name);
    assert.ok(routes.some((r) => r.family === 4 && r.dst === '10.96.0.0/12' && r.dev === 'kd0'));
    assert.ok(routes.some((r) => r.family === 6 && r.dst === 'fd10:96::/112' && r.dev === 'kd0'));
    assert.ok(routes.some((r) => r.dst === '198.18.7.0/24' && r.protocol === 'kernel'));
    assert.ok((await listRoutes(ns.name, 6)).every((r) => r.family === 6));

    await assert.rejects(addRoute('10.96.0.0/12', 'kd0', ns.name), (e: unknown) =>
      isCode('EXISTS')(e) && /ip -n kt-link-\S+ route add 10\.96\.0\.0\/12 dev kd0 failed: .*File exists/.test((e as Error).message),
    );
    await deleteRoute('10.96.0.0/12', 'kd0', ns.name);
    await deleteRoute('fd10:96::/112', 'kd0', ns.name);
    const after = await listRoutes(ns.name);
    assert.ok(!after.some((r) => r.dst === '10.96.0.0/12' || r.dst === 'fd10:96::/112'));
    await assert.rejects(deleteRoute('10.96.0.0/12', 'kd0', ns.name), isCode('NOT_FOUND'));
    await assert.rejects(setLinkUp('nosuchdev', ns.name), isCode('NOT_FOUND'));
  } finally {
    await ns.destroy();
    await ns.destroy();
  }
});

test('parseRuleTables: the tables the rules look up', () => {
  const rules = '[{"priority":0,"src":"all","table":"local"},{"priority":5209,"not":null,"fwmark":"0xca6c","table":"51820"},{"priority":32766,"src":"all","table":"main"},{"priority":40000,"src":"all","action":"unreachable"}]';
  assert.deepEqual([...parseRuleTables(rules)], ['local', '51820', 'main']);
  assert.deepEqual([...parseRuleTables('')], []);
});

test('listRoutes reads every table a rule selects (a VPN\'s own table), not tables no rule uses (in a test netns)', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await TestNetns.create('link');
  try {
    for (const args of [
      ['tuntap', 'add', 'dev', 'vpn0', 'mode', 'tun'],
      ['link', 'set', 'vpn0', 'up'],
      ['route', 'add', '10.0.0.0/8', 'dev', 'vpn0', 'table', '51820'],
      ['route', 'add', '172.16.0.0/12', 'dev', 'vpn0', 'table', '51821'],
      ['rule', 'add', 'fwmark', '0xca6c', 'table', '51820'],
    ]) {
      const exec = await ns.exec('ip', args);
      assert.equal(exec.code, 0, exec.stderr);
    }
    const routes = await listRoutes(ns.name, 4);
    assert.ok(routes.some((r) => r.dst === '10.0.0.0/8' && r.dev === 'vpn0' && r.table === '51820'));
    assert.ok(!routes.some((r) => r.dst === '172.16.0.0/12'), 'a table no rule selects is not listed');
  } finally {
    await ns.destroy();
  }
});
