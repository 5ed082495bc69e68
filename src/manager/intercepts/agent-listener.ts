// The agents' own listener (h2c, in a cluster 0.0.0.0:8083): the Agent service and the agents' AGENT_PROTOCOL
// streams, nothing of the clients' API. Agents prove who they are by their address (agent-verifier.ts), and a
// stream is accepted only from an agent connected on the same HTTP/2 connection.

import * as http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createContextValues } from '@connectrpc/connect';
import type { Logger } from '../../log/logger.js';
import { AGENT_HEADER, AGENT_PROTOCOL, CONNECTION_WINDOW_BYTES, parseIdPath } from '../../tunnel/protocol.js';
import { http2ServerLimits, RPC_READ_MAX_BYTES } from '../manager-limits.js';
import { answerBadRequest, answerFailure } from '../stream-answer.js';
import type { AgentRegistry } from './agent-registry.js';
import { AGENT_CALLER, agentRoutes, type AgentServiceDeps } from './agent-service.js';
import type { DialBroker } from './dial-broker.js';

export interface AgentListener {
  readonly url: string;
  close(): Promise<void>;
}

export interface AgentListenerOptions extends AgentServiceDeps {
  host: string;
  port: number;
  broker: DialBroker;
  agents: AgentRegistry;
  /** Connections at once: a few per agent. */
  maxConnections: number;
  log: Logger;
}

const text = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

export async function startAgentListener(options: AgentListenerOptions): Promise<AgentListener> {
  const { log, broker, agents } = options;
  const adapter = connectNodeAdapter({
    routes: agentRoutes(options),
    contextValues: (req) => {
      const session = 'stream' in req ? (req as http2.Http2ServerRequest).stream.session : undefined;
      return createContextValues().set(AGENT_CALLER, { address: req.socket.remoteAddress ?? '', connection: session });
    },
    readMaxBytes: RPC_READ_MAX_BYTES,
    acceptCompression: [],
  });
  const server = http2.createServer(http2ServerLimits());
  server.maxConnections = options.maxConnections;
  const connections = new Set<http2.ServerHttp2Session>();
  // Each relayed request and answer goes out at once, not after a delayed ACK (Nagle).
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  server.on('session', (session) => {
    connections.add(session);
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    session.on('error', (error) => log.debug('agent connection error', { error: error.message }));
    session.on('close', () => connections.delete(session));
  });
  server.on('request', (req, res) => {
    // As on the clients' listener: a refused RPC's unread body must not hold the connection.
    req.stream.once('finish', () => {
      if (req.destroyed && !req.stream.readableEnded) req.stream.removeAllListeners('data').resume();
    });
    adapter(req, res);
  });
  server.on('connect', (req: http2.Http2ServerRequest) => {
    const stream = req.stream;
    if (text(req.headers[':protocol']) !== AGENT_PROTOCOL) {
      answerBadRequest(stream, `Only ${AGENT_PROTOCOL} streams are served here.`);
      return;
    }
    const agent = agents.onConnection(text(req.headers[AGENT_HEADER]) ?? '', stream.session);
    if (agent === undefined) {
      answerFailure(stream, 'forbidden', 'No agent arrived with this id on this connection: arrive as agent first.');
      return;
    }
    const interceptId = parseIdPath(text(req.headers[':path']) ?? '', 'agent');
    if (interceptId === undefined) {
      answerBadRequest(stream, `${AGENT_PROTOCOL} needs :path /agent/{intercept id}.`);
      return;
    }
    broker.offer(stream, agent, interceptId, req.headers);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error('agent listener error', { error: error.message }));
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log.info('agent listener listening', { url });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const connection of connections) connection.close();
        setTimeout(() => {
          for (const connection of connections) connection.destroy();
        }, 1000).unref();
      }),
  };
}
