// ConnectRPC over a Unix socket, for the CLI ↔ user daemon ↔ root daemon calls. A socket file left by a crashed
// daemon is detected (nobody answers) and replaced; one that answers means the daemon already runs. The socket
// has its mode from the moment it exists (umask around bind), and every connection is served only after the
// kernel says its peer is root, this process's own user, or the one other user the daemon serves.
import { createContextKey, createContextValues, type ConnectRouter, type Transport } from '@connectrpc/connect';
import { connectNodeAdapter, createConnectTransport } from '@connectrpc/connect-node';
import { chown, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../log/logger.js';
import { peerCredentials, type PeerCredentials } from './peer-credentials.js';

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
  /** The socket file's mode, in force from bind on. */
  mode: number;
  /** The socket file's owner (the root daemon's socket belongs to the user who started it). */
  uid?: number;
  gid?: number;
  /** The one uid served besides root and this process's own. */
  peerUid?: number;
  /** Where refused connections are reported (at most one line per REFUSAL_LOG_INTERVAL_MS). */
  log?: Logger;
}

/** The caller of an RPC, as the kernel reported it when the connection was accepted. */
export const peerKey = createContextKey<PeerCredentials | undefined>(undefined, { description: 'the connection peer' });

const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Binds `path` with the umask that gives `mode`: nobody can connect in between under a looser umask. */
async function listenWithMode(server: Server, path: string, mode: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind(2) runs synchronously inside listen(), so the umask is restored before anything else runs.
    const previous = process.umask(~mode & 0o777);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(previous);
    }
  });
}

export async function listenUnixRpc(path: string, routes: (router: ConnectRouter) => void, access: SocketAccess): Promise<Server> {
  if (await socketAnswers(path)) throw new DaemonRunningError(`a daemon already listens on ${path}`);
  await rm(path, { force: true });
  const allowed = new Set([0, process.getuid?.() ?? 0, ...(access.peerUid === undefined ? [] : [access.peerUid])]);
  const log = access.log ?? silentLogger;
  const peers = new WeakMap<Socket, PeerCredentials>();
  const contextValues = (req: { socket: Socket }) => createContextValues().set(peerKey, peers.get(req.socket));
  const http = createHttpServer(connectNodeAdapter({ routes, contextValues }));
  let refused = 0;
  let lastReport = -Infinity;
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    let peer: PeerCredentials | undefined;
    try {
      peer = peerCredentials(socket);
    } catch {
      peer = undefined;
    }
    if (peer === undefined || !allowed.has(peer.uid)) {
      socket.destroy();
      refused++;
      if (performance.now() - lastReport >= REFUSAL_LOG_INTERVAL_MS) {
        lastReport = performance.now();
        log.warn('refused a connection from another user', { socket: path, uid: peer?.uid, pid: peer?.pid, refusedSinceLastReport: refused });
        refused = 0;
      }
      return;
    }
    peers.set(socket, peer);
    http.emit('connection', socket);
    socket.resume();
  });
  await listenWithMode(server, path, access.mode);
  if (access.uid !== undefined) await chown(path, access.uid, access.gid ?? -1);
  server.once('close', () => http.close());
  return server;
}

export function unixRpcTransport(path: string): Transport {
  return createConnectTransport({ baseUrl: 'http://localhost', httpVersion: '1.1', nodeOptions: { socketPath: path } });
}
