// ConnectRPC over a Unix socket, for the CLI ↔ user daemon ↔ root daemon calls. A socket file left by a crashed
// daemon is detected (nobody answers) and replaced; one that answers means the daemon already runs.
import type { ConnectRouter, Transport } from '@connectrpc/connect';
import { connectNodeAdapter, createConnectTransport } from '@connectrpc/connect-node';
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';

export class DaemonRunningError extends Error {
  readonly code = 'DAEMON_RUNNING';
}

/** Whether a daemon answers on the socket (a file left by a crashed one does not). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface SocketAccess {
  mode: number;
  uid?: number;
  gid?: number;
}

export async function listenUnixRpc(path: string, routes: (router: ConnectRouter) => void, access: SocketAccess): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  if (await socketAnswers(path)) throw new DaemonRunningError(`a daemon already listens on ${path}`);
  await rm(path, { force: true });
  const server = createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, access.mode);
  if (access.uid !== undefined) await chown(path, access.uid, access.gid ?? -1);
  return server;
}

export function unixRpcTransport(path: string): Transport {
  return createConnectTransport({ baseUrl: 'http://localhost', httpVersion: '1.1', nodeOptions: { socketPath: path } });
}
