// The user daemon serves the intercept RPCs on its socket (mock root daemon; in-process manager for the session):
// refused clearly before connect, and listing/leaving work through the real RPC layer once connected.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { ConnectRequestSchema, UserDaemon } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { listenUnixRpc, unixRpcTransport } from '../../src/rpc/unix-socket-rpc.js';
import { UserDaemonService } from '../../src/userd/user-daemon.js';
import { startTunnel } from '../tunnel/tunnel-fixture.js';
import { mockRoot } from './mock-root-daemon.js';

test('user daemon (mock root daemon): Intercept before connect says to connect; once connected the list is empty and Leave of nothing is NotFound', async (t) => {
  const { dir } = await mockRoot(t);
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  const socket = join(dir, 'user.sock');
  const server = await listenUnixRpc(socket, service.routes, { mode: 0o600 });
  const daemon = createClient(UserDaemon, unixRpcTransport(socket));
  const tunnel = await startTunnel();
  try {
    await assert.rejects(
      daemon.intercept({ workload: 'echo', mode: 'global', localPort: 8080 }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.FailedPrecondition && e.rawMessage === 'not connected: run kubetun connect first',
    );
    await assert.rejects(daemon.listWorkloads({}), (e: unknown) => e instanceof ConnectError && e.code === Code.FailedPrecondition);
    await service.connect(create(ConnectRequestSchema, { managerUrl: tunnel.manager.url, namespace: 'team' }));
    assert.deepEqual((await daemon.listIntercepts({})).intercepts, []);
    await assert.rejects(
      daemon.leave({ workload: 'echo' }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound && e.rawMessage === 'no intercept of team/echo in this session: kubetun status lists them',
    );
  } finally {
    await service.disconnect();
    server.close();
    await tunnel.close();
  }
});
