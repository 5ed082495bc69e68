// A mock root daemon for the user daemon's tests: a RootDaemon RPC server that records what it is asked.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { NetworkStatusSchema, RootDaemon, type NetworkRequest } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { rootDaemonSocket } from '../../src/local-paths.js';
import { listenUnixRpc } from '../../src/rpc/unix-socket-rpc.js';

/** A mock root daemon in a fresh run dir; `requests` are the Connect calls it got. */
export async function mockRoot(t: TestContext): Promise<{ dir: string; requests: NetworkRequest[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'kt-userd-'));
  const requests: NetworkRequest[] = [];
  const server = await listenUnixRpc(
    rootDaemonSocket(dir),
    (router) =>
      router.service(RootDaemon, {
        connect: (request) => {
          requests.push(request);
          return create(NetworkStatusSchema, { connected: true, tunnel: 'connected' });
        },
        disconnect: () => ({}),
        status: () => create(NetworkStatusSchema, { connected: requests.length > 0, tunnel: 'connected' }),
        quit: () => ({}),
      }),
    { mode: 0o600 },
  );
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, requests };
}

