// One TCP port the agent took over: each accepted connection goes, by the port's intercepts at that moment, to
// the intercepting client (global/replace), through the HTTP router (personal/wiretap), or to the app.

import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import type { AgentPortConfig } from './agent-contract.js';
import { resetSocket } from '../net/socket-reset.js';
import { connectApp, splice } from './app-connection.js';
import { routeHttpConnection, type HttpRoutingHooks } from './http/http-routing.js';
import type { InterceptTable } from './intercept-table.js';
import type { StreamSource } from './manager-link.js';

export interface PortDeps {
  table: InterceptTable;
  openAgentStream(interceptId: string, source: StreamSource, mirror: boolean): Promise<Duplex>;
  /** No app container in the pod (a replace): without an intercept, connections are refused. */
  replaced: boolean;
  log: Logger;
  /** Serves a connection of a port with personal intercepts or wiretaps (default: routeHttpConnection). */
  routeHttp?: typeof routeHttpConnection;
}

/** Connections one port holds at once; more wait in the kernel's backlog. */
const MAX_CONNECTIONS = 4096;

/** The cluster client's address as the manager shows it: an IPv4-mapped IPv6 address becomes IPv4. */
export function sourceOf(address: string | undefined, port: number | undefined): StreamSource {
  const plain = address?.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  return { address: plain ?? '0.0.0.0', port: port ?? 0 };
}

function serveConnection(socket: net.Socket, port: AgentPortConfig, deps: PortDeps): void {
  // Until a route is chosen: a reset from the client must not throw.
  socket.on('error', () => undefined);
  const source = sourceOf(socket.remoteAddress, socket.remotePort);
  const now = deps.table.forPort(port.agentPort);
  const refuse = (why: string) => (error: Error) => {
    deps.log.debug(why, { port: port.containerPort, error: error.message });
    resetSocket(socket);
  };
  if (now.whole !== undefined) {
    deps.openAgentStream(now.whole, source, false).then((stream) => splice(socket, stream), refuse('the intercepting client did not take a connection'));
    return;
  }
  if (now.personal.length > 0 || now.wiretaps.length > 0) {
    const hooks: HttpRoutingHooks = {
      personal: () => deps.table.forPort(port.agentPort).personal,
      wiretaps: () => deps.table.forPort(port.agentPort).wiretaps,
      openApp: () => connectApp(port.containerPort),
      openIntercept: (id, mirror) => deps.openAgentStream(id, source, mirror),
      // The manager counts the streams it splices; the agent keeps no counts of its own.
      counted: () => undefined,
    };
    (deps.routeHttp ?? routeHttpConnection)(socket, hooks, deps.log);
    return;
  }
  if (deps.replaced) {
    refuse('no intercept holds the port of a replaced container')(new Error('no app container'));
    return;
  }
  connectApp(port.containerPort).then((app) => splice(socket, app), refuse('the app did not take a connection'));
}

/** Listens on every address (dual-stack, or IPv4 alone where the pod has no IPv6) on port.agentPort. */
export async function listenTcpPort(port: AgentPortConfig, deps: PortDeps): Promise<net.Server> {
  const listen = (host: string): Promise<net.Server> =>
    new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => serveConnection(socket, port, deps));
      server.maxConnections = MAX_CONNECTIONS;
      server.once('error', reject);
      server.listen({ host, port: port.agentPort, ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (error) => deps.log.warn('a port listener failed', { port: port.agentPort, error: error.message }));
        resolve(server);
      });
    });
  return listen('::').catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EAFNOSUPPORT' && error.code !== 'EADDRNOTAVAIL') throw error;
    return listen('0.0.0.0');
  });
}
