// UserDaemonService.connect to a manager's TLS listener (in this process; the root daemon is a mock RPC server
// that records what it is asked): the credential comes from --manager-token-file or from the kubeconfig user (here
// an exec plugin, run by the user daemon), and the root daemon is handed the same token and the CA's PEM.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ConnectRequestSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { kubernetesAuthenticator, tokenAuthenticator, type AuthOutcome } from '../../src/manager/client-auth.js';
import { UserDaemonService } from '../../src/userd/user-daemon.js';
import { selfSignedCertificate, startTunnel } from '../tunnel/tunnel-fixture.js';
import { mockRoot } from './mock-root-daemon.js';

const TOKEN = 'the-shared-token-0123456789abcdef';

/** A mock root daemon in a fresh run dir, and a TLS manager that wants TOKEN, with its certificate as CA. */
async function setUp(t: TestContext) {
  const { dir, requests } = await mockRoot(t);
  const tls = selfSignedCertificate(dir);
  const tunnel = await startTunnel({ tls, authenticator: tokenAuthenticator(TOKEN) }, 'default', TOKEN, readFileSync(tls.certFile));
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  t.after(async () => {
    await service.disconnect();
    await tunnel.close();
  });
  return { dir, requests, url: tunnel.manager.url, caFile: tls.certFile, service };
}

test('--manager-token-file and --manager-ca (mock root daemon): arrives over TLS, hands root the token and the PEM', async (t) => {
  const { dir, requests, url, caFile, service } = await setUp(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const status = await service.connect(create(ConnectRequestSchema, { managerUrl: url, managerCaFile: caFile, managerTokenFile: tokenFile }));
  assert.equal(status.state, 'connected');
  assert.equal(requests.length, 1);
  assert.equal(requests[0]!.managerBearerToken, TOKEN);
  assert.equal(requests[0]!.managerCaPem, readFileSync(caFile, 'utf8'));
});

test("the kubeconfig user's token, from an exec plugin run by the user daemon (mock root daemon)", async (t) => {
  const { dir, requests, url, caFile, service } = await setUp(t);
  const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: TOKEN } });
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: sh, args: ["-c", ${JSON.stringify(`echo '${credential}'`)}]}}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]
current-context: x
`,
  );
  const status = await service.connect(create(ConnectRequestSchema, { managerUrl: url, managerCaFile: caFile, kubeconfig }));
  assert.equal(status.namespace, 'shop', "the context's namespace");
  assert.equal(requests[0]!.managerBearerToken, TOKEN);
});

test('a wrong token is a clear Unauthenticated error, and root is not asked to connect (mock root daemon)', async (t) => {
  const { dir, requests, url, caFile, service } = await setUp(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'not-the-token-0123456789abcdef\n');
  await assert.rejects(
    service.connect(create(ConnectRequestSchema, { managerUrl: url, managerCaFile: caFile, managerTokenFile: tokenFile })),
    (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated && /not the one the traffic manager was started with/.test(error.rawMessage),
  );
  assert.equal(requests.length, 0);
});

test('an expired token is refreshed from its file and the root daemon gets the new one (mock root daemon)', { timeout: 30_000 }, async (t) => {
  const { dir, requests } = await mockRoot(t);
  const tls = selfSignedCertificate(dir);
  // The API's verdict: first only the old token is valid, then only the new one (a rotation).
  let valid = 'old-token-0123456789abcdef';
  const review = async (token: string): Promise<AuthOutcome> =>
    token === valid ? { ok: true, identity: 'user:rotating' } : { ok: false, status: 401, message: 'expired' };
  const tunnel = await startTunnel({ tls, authenticator: kubernetesAuthenticator(review, 0) }, 'default', valid, readFileSync(tls.certFile));
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  t.after(async () => {
    await service.disconnect();
    await tunnel.close();
  });
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, valid);
  await service.connect(create(ConnectRequestSchema, { managerUrl: tunnel.manager.url, managerCaFile: tls.certFile, managerTokenFile: tokenFile }));
  valid = 'new-token-0123456789abcdef';
  writeFileSync(tokenFile, valid);
  // The next keepalive is refused; the daemon reads the file again and reconnects the root daemon with it.
  while (requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(requests[1]!.managerBearerToken, valid);
  assert.equal(requests[1]!.sessionId, requests[0]!.sessionId, 'the session is kept');
  assert.equal((await service.status()).state, 'connected');
});
