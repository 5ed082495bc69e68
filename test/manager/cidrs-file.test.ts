import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../src/log/logger.js';
import { CidrsFileError, followCidrsFile, readCidrsFile } from '../../src/manager/cidrs-file.js';
import { ClusterInfoSource } from '../../src/manager/cluster-info-source.js';
import { formatPrefix, parsePrefix } from '../../src/netstack/wire/ip-address.js';

test('a CIDRs file is read, and a bad one is refused with the file and the fix named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kt-cidrs-'));
  try {
    const file = join(dir, 'cidrs.json');
    await writeFile(file, JSON.stringify({ podCidrs: ['10.244.0.0/16'], serviceCidrs: ['10.96.0.0/12', 'fd10:96::/112'] }));
    assert.deepEqual(readCidrsFile(file).serviceCidrs.map(formatPrefix), ['10.96.0.0/12', 'fd10:96::/112']);
    await writeFile(file, JSON.stringify({ podCidrs: ['10.244.0.0/33'], serviceCidrs: [] }));
    assert.throws(() => readCidrsFile(file), (e: unknown) => e instanceof CidrsFileError && /10\.244\.0\.0\/33" in podCidrs is not a CIDR/.test(e.message));
    await writeFile(file, '{"podCidrs": "10.0.0.0/8"}');
    assert.throws(() => readCidrsFile(file), /must be a list of CIDRs/);
    await writeFile(file, 'not json');
    assert.throws(() => readCidrsFile(file), CidrsFileError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a change of the file reaches the cluster info; a broken edit keeps the last good CIDRs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kt-cidrs-'));
  const file = join(dir, 'cidrs.json');
  await writeFile(file, JSON.stringify({ podCidrs: ['10.244.0.0/16'], serviceCidrs: ['10.96.0.0/12'] }));
  const cluster = new ClusterInfoSource({ ...readCidrsFile(file), dns: undefined, clusterDomain: 'cluster.local' });
  const stop = followCidrsFile(file, cluster, silentLogger);
  try {
    const changed = new Promise((resolve) => cluster.once('change', resolve));
    await writeFile(file, JSON.stringify({ podCidrs: ['10.244.0.0/16', '10.245.0.0/16'], serviceCidrs: ['10.96.0.0/12'] }));
    await changed;
    assert.deepEqual(cluster.current().facts.podCidrs.map(formatPrefix), ['10.244.0.0/16', '10.245.0.0/16']);
    await writeFile(file, '{ broken');
    await new Promise((r) => setTimeout(r, 1200));
    assert.ok(cluster.current().facts.podCidrs.some((p) => formatPrefix(p) === formatPrefix(parsePrefix('10.245.0.0/16'))));
  } finally {
    stop();
    await rm(dir, { recursive: true, force: true });
  }
});
