import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tokenAuthenticator } from '../../src/manager/client-auth.js';
import { startTrafficManager } from '../../src/manager/traffic-manager.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { roundTrip, selfSignedCertificate, startTcpEcho, testManagerConfig } from './tunnel-fixture.js';

const TOKEN = 'a-shared-token-of-the-test-0123456789';

test('the tunnel works over TLS with --tls-cert/--tls-key, a client trusting that certificate and holding the token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-tls-'));
  const { certFile, keyFile } = selfSignedCertificate(dir);
  const manager = await startTrafficManager(testManagerConfig({ tls: { certFile, keyFile }, authenticator: tokenAuthenticator(TOKEN), version: 'tls-test' }));
  const echo = await startTcpEcho();
  const client = await TunnelClient.connect(manager.url, { tls: { ca: readFileSync(certFile) }, bearerToken: TOKEN });
  try {
    assert.match(manager.url, /^https:/);
    assert.equal((await client.manager.version({})).version, 'tls-test');
    client.sessionId = (await client.manager.arriveAsClient({ name: 'tls' })).id;
    const answer = await roundTrip(await client.openTcp('127.0.0.1', echo.port), Buffer.from('over tls'));
    assert.equal(answer.toString(), 'over tls');
  } finally {
    client.close();
    await echo.close();
    await manager.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
