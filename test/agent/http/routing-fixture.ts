// Real sockets on 127.0.0.1 for the routing tests: an app server, a "client's server" per intercept, and an agent
// listener that hands each accepted connection to routeHttpConnection. openIntercept connects straight to the
// client's server: the same byte stream the manager's splice delivers.

import { create } from '@bufbuild/protobuf';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFilterSchema } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { compileFilter } from '../../../src/agent/http/http-filter.js';
import { InterceptDialError, routeHttpConnection, type HttpRoutingHooks, type PersonalRoute } from '../../../src/agent/http/http-routing.js';
import { silentLogger } from '../../../src/log/logger.js';

export interface Listening {
  port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 with any server (net, http, http2); close() also ends its open connections. */
export async function listen(server: net.Server): Promise<Listening> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export function connectTo(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

export function headerRoute(id: string, name: string, value: string): PersonalRoute {
  return { id, filter: compileFilter(create(HttpFilterSchema, { headers: [{ name, value }] })) };
}

export interface AgentOptions {
  app: number;
  /** Intercept id → the port of its client's server; an Error: openIntercept rejects with it. */
  intercepts: Record<string, number | Error>;
  personal?: PersonalRoute[];
  wiretaps?: string[];
  sniffMs?: number;
}

export interface Agent extends Listening {
  counts: Map<string, number>;
  /** Every openIntercept call, `id` or `id (mirror)`. */
  dials: string[];
  /** How many connections to the app were opened. */
  appDials(): number;
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const counts = new Map<string, number>();
  const dials: string[] = [];
  const state = { appDials: 0 };
  const hooks: HttpRoutingHooks = {
    personal: () => options.personal ?? [],
    wiretaps: () => options.wiretaps ?? [],
    openApp: () => {
      state.appDials++;
      return connectTo(options.app);
    },
    openIntercept: (id, mirror) => {
      dials.push(mirror ? `${id} (mirror)` : id);
      const target = options.intercepts[id];
      if (target === undefined) return Promise.reject(new InterceptDialError(`no intercept ${id}`, 502));
      return target instanceof Error ? Promise.reject(target) : connectTo(target);
    },
    counted: (id) => counts.set(id, (counts.get(id) ?? 0) + 1),
  };
  const server = net.createServer((socket) => routeHttpConnection(socket, hooks, silentLogger, { sniffMs: options.sniffMs ?? 1000 }));
  const listening = await listen(server);
  return { ...listening, counts, dials, appDials: () => state.appDials };
}

/** Sends raw bytes and collects everything until the agent closes the connection. */
export function exchangeRaw(port: number, bytes: string | Buffer, endAfterWrite = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(bytes);
    if (endAfterWrite) socket.end();
  });
}

/** Reads from a socket until `done(text so far)` holds. */
export function readUntil(socket: net.Socket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString('latin1');
      if (done(text)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(text)}`)));
  });
}
