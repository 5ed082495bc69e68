// The traffic manager as a local Unix socket: every connection accepted there is piped through a new stream from
// `dial` (a port-forward to the manager pod of the moment). Both daemons dial it as `unix:<path>`, so the root
// daemon needs no kubeconfig and its reconnects get a fresh port-forward, to a replaced pod too.

import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { pipeline, type Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';

export class ManagerForwarder {
  /** Why the latest dial failed; null once one succeeds. */
  lastError: Error | null = null;
  private readonly connections = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** The URL TunnelClient.connect takes for this socket. */
  get url(): string {
    return `unix:${this.path}`;
  }

  /** Listens on `path` (replacing a file left there), readable and writable by this user only (root passes anyway). */
  static async listen(path: string, dial: () => Promise<Duplex>, log: Logger): Promise<ManagerForwarder> {
    await rm(path, { force: true });
    let forwarder: ManagerForwarder | null = null;
    const server = createServer((socket) => {
      if (forwarder === null) {
        socket.destroy();
        return;
      }
      void forwarder.forward(socket, dial, log);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // The user's own credentials open the port-forward: other local users must not borrow it.
    await chmod(path, 0o600);
    forwarder = new ManagerForwarder(server, path);
    return forwarder;
  }

  private async forward(socket: Socket, dial: () => Promise<Duplex>, log: Logger): Promise<void> {
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
    // Bytes the client sends meanwhile wait in the socket: nothing reads it before the pipeline starts.
    socket.on('error', () => undefined);
    let remote: Duplex;
    try {
      remote = await dial();
      this.lastError = null;
    } catch (error) {
      this.lastError = error as Error;
      log.warn(`cannot reach the traffic manager: ${(error as Error).message}`);
      socket.destroy();
      return;
    }
    if (socket.destroyed) {
      remote.destroy();
      return;
    }
    pipeline(socket, remote, socket, (error) => {
      if (error) log.info(`a connection to the traffic manager ended: ${error.message}`);
    });
  }

  /** Stops listening and cuts every forwarded connection. */
  close(): void {
    this.server.close();
    for (const socket of this.connections) socket.destroy();
  }
}
