import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { parseResolvConf } from '../../src/dns/resolv-conf.js';
import { ManagedResolvConf, ResolvConfError } from '../../src/rootd/resolv-conf.js';

const ORIGINAL = '# from the DHCP client\nnameserver 198.18.0.1\nnameserver 198.18.0.3\nsearch corp.example\noptions edns0 timeout:2\n';
let dir: string;
let file: string;
/** Root's state dir stand-in: a fresh one below the test's private folder. */
let state: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-resolv-'));
  file = join(dir, 'resolv.conf');
  state = join(dir, 'state');
  await writeFile(file, ORIGINAL);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

test('apply puts kubetun first with the cluster search domains ahead of the original ones; restore is exact', async () => {
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
  const conf = parseResolvConf(await readFile(file, 'utf8'));
  assert.deepEqual(conf.nameservers, ['198.18.255.53']);
  assert.deepEqual(conf.search, ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example']);
  assert.deepEqual(conf.options, ['edns0', 'timeout:2']);
  assert.deepEqual((await managed.original()).nameservers, ['198.18.0.1', '198.18.0.3']);
  assert.equal(await managed.restore(), 'restored');
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
  assert.equal(await managed.restore(), 'nothing');
});

test('applying twice (a namespace change) keeps the first backup, so restore still gives the original', async () => {
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['default.svc.cluster.local']);
  await managed.apply('198.18.255.53', ['shop.svc.cluster.local']);
  assert.deepEqual(parseResolvConf(await readFile(file, 'utf8')).search, ['shop.svc.cluster.local', 'corp.example']);
  await managed.restore();
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
});

test('a daemon that died with the file changed is repaired by the next start', async () => {
  await new ManagedResolvConf(file, state).apply('198.18.255.53', ['cluster.local']);
  const nextStart = new ManagedResolvConf(file, state);
  assert.equal(await nextStart.restore(), 'restored');
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
});

test('the backup is kept in a state dir of its own, mode 0700', async () => {
  await new ManagedResolvConf(file, state).apply('198.18.255.53', ['cluster.local']);
  assert.equal((await stat(state)).mode & 0o777, 0o700);
  assert.equal(await readFile(join(state, 'resolv.conf.original'), 'utf8'), ORIGINAL);
});

test('a backup planted as a symlink is neither read nor followed (root never copies another file over resolv.conf)', async () => {
  const secret = join(dir, 'secret');
  await writeFile(secret, 'root:secret-hash\n');
  await mkdir(state, { mode: 0o700 });
  await symlink(secret, join(state, 'resolv.conf.original'));
  const managed = new ManagedResolvConf(file, state);
  await assert.rejects(managed.restore(), (error: unknown) => error instanceof ResolvConfError && /is a symbolic link/.test(error.message));
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
  assert.equal(await readFile(secret, 'utf8'), 'root:secret-hash\n');
});

test('apply never writes through a symlink planted at the backup path', async () => {
  const victim = join(dir, 'victim');
  await writeFile(victim, 'untouched\n');
  await mkdir(state, { mode: 0o700 });
  await symlink(victim, join(state, 'resolv.conf.original'));
  await new ManagedResolvConf(file, state).apply('198.18.255.53', ['cluster.local']);
  assert.equal(await readFile(victim, 'utf8'), 'untouched\n');
  assert.equal((await lstat(join(state, 'resolv.conf.original'))).isFile(), true);
  assert.equal(await readFile(join(state, 'resolv.conf.original'), 'utf8'), ORIGINAL);
});

test('a state dir that is a symlink is refused', async () => {
  const elsewhere = join(dir, 'elsewhere');
  await mkdir(elsewhere);
  await symlink(elsewhere, state);
  await assert.rejects(new ManagedResolvConf(file, state).apply('198.18.255.53', ['cluster.local']), ResolvConfError);
  assert.equal(await readFile(file, 'utf8'), ORIGINAL);
});

test('a symlinked resolv.conf (NetworkManager) is replaced by kubetun\'s own file, never written through; restore puts the link back', async () => {
  const networkManagers = join(dir, 'nm-resolv.conf');
  await rm(file);
  await writeFile(networkManagers, ORIGINAL);
  await symlink(networkManagers, file);
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['cluster.local']);
  assert.equal(await readFile(networkManagers, 'utf8'), ORIGINAL, 'the other program\'s file is untouched');
  assert.equal((await lstat(file)).isSymbolicLink(), false);
  assert.deepEqual(parseResolvConf(await readFile(file, 'utf8')).nameservers, ['198.18.255.53']);
  assert.deepEqual((await managed.original()).nameservers, ['198.18.0.1', '198.18.0.3']);
  assert.equal(await managed.restore(), 'restored');
  assert.equal(await readlink(file), networkManagers);
  assert.equal(await readFile(networkManagers, 'utf8'), ORIGINAL);
});

test('restore leaves a file the system rewrote meanwhile (no kubetun marker) and drops the stale backup', async () => {
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['cluster.local']);
  const dhcp = '# written by the DHCP client\nnameserver 198.18.0.9\n';
  await writeFile(file, dhcp);
  assert.equal(await new ManagedResolvConf(file, state).restore(), 'kept-system-file');
  assert.equal(await readFile(file, 'utf8'), dhcp);
  await assert.rejects(readFile(join(state, 'resolv.conf.original')), { code: 'ENOENT' });
});

test('a file the system rewrote while connected becomes the new original', async () => {
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['cluster.local']);
  const dhcp = 'nameserver 198.18.0.9\nsearch new.example\n';
  await writeFile(file, dhcp);
  await managed.apply('198.18.255.53', ['cluster.local']);
  assert.deepEqual(parseResolvConf(await readFile(file, 'utf8')).search, ['cluster.local', 'new.example']);
  assert.equal(await managed.restore(), 'restored');
  assert.equal(await readFile(file, 'utf8'), dhcp);
});

test('kubetun\'s file without its backup is never taken for the original: a clear error instead', async () => {
  const managed = new ManagedResolvConf(file, state);
  await managed.apply('198.18.255.53', ['cluster.local']);
  const ours = await readFile(file, 'utf8');
  await rm(join(state, 'resolv.conf.original'));
  await assert.rejects(managed.apply('198.18.255.53', ['cluster.local']), (error: unknown) => error instanceof ResolvConfError && /backup of the original is gone/.test(error.message));
  assert.equal(await readFile(file, 'utf8'), ours);
});
