// UserDaemonService.connect with a mock root daemon (a RootDaemon RPC server that records what it is asked): the
// direct-URL mode against an in-process manager, and the kubeconfig mode's errors before any port-forward.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ConnectRequestSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { UserDaemonService } from '../../src/userd/user-daemon.js';
import { closedPort, startTunnel } from '../tunnel/tunnel-fixture.js';
import { mockRoot } from './mock-root-daemon.js';

test('direct URL (mock root daemon): arrives, defaults the namespace, hands the root daemon the same URL', async (t) => {
  const { dir, requests } = await mockRoot(t);
  const tunnel = await startTunnel();
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  try {
    const status = await service.connect(create(ConnectRequestSchema, { managerUrl: tunnel.manager.url }));
    assert.equal(status.state, 'connected');
    assert.equal(status.namespace, 'default');
    assert.equal(status.managerUrl, tunnel.manager.url);
    assert.equal(status.managerPod, '');
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.managerUrl, tunnel.manager.url);
    assert.equal(requests[0]!.sessionId, status.sessionId);
    // The same request again keeps the session.
    const again = await service.connect(create(ConnectRequestSchema, { managerUrl: tunnel.manager.url }));
    assert.equal(again.sessionId, status.sessionId);
    assert.equal(requests.length, 1);
  } finally {
    await service.disconnect();
    await tunnel.close();
  }
});

test('kubeconfig mode (mock root daemon): a missing kubeconfig and an unreachable API server are clear errors', async (t) => {
  const { dir, requests } = await mockRoot(t);
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  await assert.rejects(
    service.connect(create(ConnectRequestSchema, { kubeconfig: join(dir, 'missing.kubeconfig') })),
    (error: unknown) => error instanceof ConnectError && error.code === Code.InvalidArgument && /missing\.kubeconfig\) exists/.test(error.rawMessage),
  );
  const port = await closedPort();
  const kubeconfig = join(dir, 'closed.kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
  );
  await assert.rejects(
    service.connect(create(ConnectRequestSchema, { kubeconfig })),
    (error: unknown) =>
      error instanceof ConnectError &&
      error.code === Code.FailedPrecondition &&
      error.rawMessage === `cannot read Service traffic-manager in namespace kubetun: https://127.0.0.1:${port} refused the connection: is the cluster running, and is this the right --context?`,
  );
  assert.equal(requests.length, 0, 'the root daemon is not asked to connect');
});
