import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { silentLogger } from '../../src/log/logger.js';
import { tokenAuthenticator } from '../../src/manager/client-auth.js';
import { startTrafficManager } from '../../src/manager/traffic-manager.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { selfSignedCertificate, startTcpEcho } from './tunnel-fixture.js';

const TOKEN = 'a-shared-token-of-the-test-0123456789';

test('the tunnel works over TLS with --tls-cert/--tls-key, a client trusting that certificate and holding the token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-tls-'));
  const { certFile, keyFile } = selfSignedCertificate(dir);
  const manager = await startTrafficManager({
    host: '127.0.0.1',
    port: 0,
    cluster: { podCidrs: [], serviceCidrs: [], dns: undefined, clusterDomain: 'cluster.local' },
    allow: [parsePrefix('127.0.0.0/8')],
    sessionTtlMs: 60_000,
    dialTimeoutMs: 1000,
    udpIdleMs: 1000,
    tls: { certFile, keyFile },
    authenticator: tokenAuthenticator(TOKEN),
    version: 'tls-test',
    log: silentLogger,
  });
  const echo = await startTcpEcho();
  const client = await TunnelClient.connect(manager.url, { tls: { ca: readFileSync(certFile) }, bearerToken: TOKEN });
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
