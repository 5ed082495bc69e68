// A test double of the traffic manager's agent listener (no real manager can run in a unit test: it needs a
// cluster): the Agent service over connectNodeAdapter on an h2c server, and the AGENT_PROTOCOL streams handed to
// the test, which answers them as the manager would after a client claimed (or refused) them.

import { EventEmitter, once } from 'node:events';
import * as http2 from 'node:http2';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  Agent,
  AgentDirectiveSchema,
  AgentInterceptSchema,
  type AgentDirective,
  type AgentInfo,
  type AgentIntercept,
} from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { AGENT_PROTOCOL } from '../../src/tunnel/protocol.js';

export const AGENT_ID = 'agent-test-1';

export interface AgentStream {
  stream: http2.ServerHttp2Stream;
  headers: http2.IncomingHttpHeaders;
}

interface Arrival {
  info: AgentInfo;
  push(directive: AgentDirective): void;
}

export function intercept(fields: MessageInitShape<typeof AgentInterceptSchema> & { id: string; mode: string }): AgentIntercept {
  return create(AgentInterceptSchema, fields);
}

export class ManagerDouble extends EventEmitter<{ arrival: [info: AgentInfo]; agentStream: [s: AgentStream] }> {
  readonly arrivals: AgentInfo[] = [];
  private readonly live = new Set<Arrival>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private intercepts: AgentIntercept[] = [];
  private server: http2.Http2Server | undefined;
  port = 0;

  /** Listens on 127.0.0.1 (on `port` when given: a manager coming back). */
  async start(port = 0): Promise<void> {
    const routes = (router: ConnectRouter): void => {
      router.service(Agent, {
        arriveAsAgent: (info, context) => this.arrive(info, context.signal),
      });
    };
    const adapter = connectNodeAdapter({ routes });
    const server = http2.createServer({ settings: { enableConnectProtocol: true } });
    server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
    });
    server.on('request', adapter);
    server.on('connect', (req: http2.Http2ServerRequest) => {
      if (req.headers[':protocol'] !== AGENT_PROTOCOL) {
        req.stream.respond({ ':status': 400 }, { endStream: true });
        return;
      }
      this.emit('agentStream', { stream: req.stream, headers: req.headers });
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** Sends the complete intercept list to every agent that arrived. */
  setIntercepts(intercepts: AgentIntercept[]): void {
    this.intercepts = intercepts;
    for (const arrival of this.live) arrival.push(create(AgentDirectiveSchema, { intercepts }));
  }

  /** The manager goes away: every connection is cut, the port closed. */
  async stop(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async *arrive(info: AgentInfo, signal: AbortSignal): AsyncGenerator<AgentDirective> {
    const queue: AgentDirective[] = [create(AgentDirectiveSchema, { agentId: AGENT_ID, intercepts: this.intercepts })];
    let wake: (() => void) | undefined;
    const arrival: Arrival = {
      info,
      push: (directive) => {
        queue.push(directive);
        wake?.();
      },
    };
    this.live.add(arrival);
    this.arrivals.push(info);
    this.emit('arrival', info);
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
      }
    } finally {
      this.live.delete(arrival);
    }
  }
}
