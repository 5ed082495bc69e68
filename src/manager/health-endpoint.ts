// The manager's liveness and readiness, on a port of their own: in a cluster the tunnel listens only on the pod's
// loopback, and this is the one port the pod network (the kubelet's probes) may reach. It serves GET /healthz
// (the process answers) and GET /readyz (the manager has its cluster info and accepts tunnels), nothing else, and
// keeps what any pod can make it hold small.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log/logger.js';

// Anyone in the cluster may connect: a probe needs one short request, never a body or many headers.
const MAX_HEADER_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 2_000;
// Past this many open connections the oldest is closed for a new one: a pod holding connections open can then
// neither exhaust the manager's memory nor lock the kubelet's probes out (and get the manager restarted).
const MAX_CONNECTIONS = 64;

export interface HealthEndpoint {
  /** From now on /readyz answers 200. */
  markReady(): void;
  /** The bound port (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

function answer(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'close', ...headers });
  res.end(`${text}\n`);
}

export async function startHealthEndpoint(options: { host: string; port: number; log: Logger }): Promise<HealthEndpoint> {
  let ready = false;
  const server: Server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req: IncomingMessage, res) => {
    // A body is never read: the connection closes after the answer.
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/healthz' && path !== '/readyz') {
      answer(res, 404, 'not found: this port serves only /healthz and /readyz');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      answer(res, 405, 'method not allowed: use GET', { Allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') answer(res, 200, 'ok');
    else if (ready) answer(res, 200, 'ready');
    else answer(res, 503, 'not ready: the cluster info is not known yet');
  });
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    if (open.size >= MAX_CONNECTIONS) {
      const oldest = open.values().next().value as Socket;
      open.delete(oldest);
      oldest.destroy();
    }
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  options.log.info('health endpoint listening', { host: options.host, port, paths: ['/healthz', '/readyz'] });
  return {
    port,
    markReady: () => {
      ready = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
