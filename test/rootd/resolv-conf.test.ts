import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { parseResolvConf } from '../../src/dns/resolv-conf.js';
import { ManagedResolvConf } from '../../src/rootd/resolv-conf.js';

const ORIGINAL = '# from the DHCP client\nnameserver 198.18.0.1\nnameserver 198.18.0.3\nsearch corp.example\noptions edns0 timeout:2\n';
let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-resolv-'));
  file = join(dir, 'resolv.conf');
  await writeFile(file, ORIGINAL);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

test('apply puts kubetun first with the cluster search domains ahead of the original ones; restore is exact', async () => {
  const managed = new ManagedResolvConf(file, dir);
  await managed.apply('198.18.255.53', ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
  const conf = parseResolvConf(await readFile(file, 'utf8'));
  assert.deepEqual(conf.nameservers, ['198.18.255.53']);
  assert.deepEqual(conf.search, ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example']);
  assert.deepEqual(conf.options, ['edns0', 'timeout:2']);
  assert.deepEqual((await managed.original()).nameservers, ['198.18.0.1', '198.18.0.3']);
  assert.equal(await managed.restore(), true);
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
  assert.equal(await managed.restore(), false);
});

test('applying twice (a namespace change) keeps the first backup, so restore still gives the original', async () => {
  const managed = new ManagedResolvConf(file, dir);
  await managed.apply('198.18.255.53', ['default.svc.cluster.local']);
  await managed.apply('198.18.255.53', ['shop.svc.cluster.local']);
  assert.deepEqual(parseResolvConf(await readFile(file, 'utf8')).search, ['shop.svc.cluster.local', 'corp.example']);
  await managed.restore();
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
});

test('a daemon that died with the file changed is repaired by the next start', async () => {
  await new ManagedResolvConf(file, dir).apply('198.18.255.53', ['cluster.local']);
  const nextStart = new ManagedResolvConf(file, dir);
  assert.equal(await nextStart.restore(), true);
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
});
