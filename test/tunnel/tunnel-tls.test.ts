import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { silentLogger } from '../../src/log/logger.js';
import { startTrafficManager } from '../../src/manager/traffic-manager.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { startTcpEcho } from './tunnel-fixture.js';

test('the tunnel works over TLS with --tls-cert/--tls-key and a client trusting that certificate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=traffic-manager', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  const manager = await startTrafficManager({
    host: '127.0.0.1',
    port: 0,
    cluster: { podCidrs: [], serviceCidrs: [], dns: undefined, clusterDomain: 'cluster.local' },
    allow: [parsePrefix('127.0.0.0/8')],
    loopbackTargetsForTests: true,
    sessionTtlMs: 60_000,
    dialTimeoutMs: 1000,
    udpIdleMs: 1000,
    tls: { certFile, keyFile },
    version: 'tls-test',
    log: silentLogger,
  });
  const echo = await startTcpEcho();
  const client = await TunnelClient.connect(manager.url, { tls: { ca: readFileSync(certFile) } });
  try {
    assert.match(manager.url, /^https:/);
    assert.equal((await client.manager.version({})).version, 'tls-test');
    client.sessionId = (await client.manager.arriveAsClient({ name: 'tls' })).id;
    const stream = await client.openTcp('127.0.0.1', echo.port);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.end('over tls');
    await new Promise((resolve) => stream.on('end', resolve));
    assert.equal(Buffer.concat(chunks).toString(), 'over tls');
  } finally {
    client.close();
    await echo.close();
    await manager.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
