// One UDP port the agent took over. UDP has no connections, so the agent makes flows: one per client
// address:port, each with its own agent stream of RFC 9297 datagram capsules (a global/replace intercept) or its
// own socket to the app; answers go back from the listening socket to that client. A flow closes after idleMs
// without a datagram, or when the port's intercept changes. Flows and buffers are capped: UDP may drop.

import * as dgram from 'node:dgram';
import type { Duplex } from 'node:stream';
import { CapsuleDecoder, encodeDatagramCapsule } from '../tunnel/capsule.js';
import type { AgentPortConfig } from './agent-contract.js';
import { sourceOf, type PortDeps } from './tcp-port.js';

export interface UdpPortOptions {
  /** Default 60 s. */
  idleMs?: number;
  /** Default 1,024. */
  maxFlows?: number;
}

/** Capsule bytes queued on a stream (or datagrams waiting for it to open) beyond which datagrams are dropped. */
const DROP_THRESHOLD_BYTES = 1024 * 1024;

interface Flow {
  /** The intercept the flow goes to; undefined: the app. */
  interceptId: string | undefined;
  send(payload: Buffer): void;
  close(): void;
  lastActivity: number;
}

export class UdpPort {
  private readonly flows = new Map<string, Flow>();
  private readonly idleMs: number;
  private readonly maxFlows: number;
  private readonly idleTimer: NodeJS.Timeout;
  private fullLogged = false;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly port: AgentPortConfig,
    private readonly deps: PortDeps,
    options: UdpPortOptions,
  ) {
    this.idleMs = options.idleMs ?? 60_000;
    this.maxFlows = options.maxFlows ?? 1024;
    socket.on('message', (payload, from) => this.receive(payload, from.address, from.port));
    // Errors on an unconnected socket are ICMP reports for single datagrams: UDP carries on.
    socket.on('error', () => undefined);
    this.idleTimer = setInterval(() => this.closeIdle(), Math.max(1, Math.min(this.idleMs, 5_000)));
    this.idleTimer.unref();
  }

  /** Binds port.agentPort on every address (dual-stack, or IPv4 alone where the pod has no IPv6). */
  static async listen(port: AgentPortConfig, deps: PortDeps, options: UdpPortOptions = {}): Promise<UdpPort> {
    const bind = (type: 'udp4' | 'udp6'): Promise<dgram.Socket> =>
      new Promise((resolve, reject) => {
        const socket = dgram.createSocket({ type, ipv6Only: false });
        socket.once('error', reject);
        socket.bind({ port: port.agentPort, address: type === 'udp6' ? '::' : '0.0.0.0' }, () => {
          socket.off('error', reject);
          resolve(socket);
        });
      });
    const socket = await bind('udp6').catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EAFNOSUPPORT' && error.code !== 'EADDRNOTAVAIL') throw error;
      return bind('udp4');
    });
    return new UdpPort(socket, port, deps, options);
  }

  close(): void {
    clearInterval(this.idleTimer);
    for (const flow of this.flows.values()) flow.close();
    this.flows.clear();
    this.socket.close();
  }

  private receive(payload: Buffer, address: string, port: number): void {
    const key = `${address}|${port}`;
    const now = this.deps.table.forPort(this.port.agentPort);
    let flow = this.flows.get(key);
    if (flow !== undefined && flow.interceptId !== now.whole) {
      flow.close();
      flow = undefined;
    }
    if (flow === undefined) {
      if (now.whole === undefined && this.deps.replaced) return;
      if (this.flows.size >= this.maxFlows) {
        if (!this.fullLogged) this.deps.log.warn('too many UDP flows: new clients are dropped', { port: this.port.containerPort, flows: this.maxFlows });
        this.fullLogged = true;
        return;
      }
      const answer = (reply: Buffer): void => {
        this.socket.send(reply, port, address);
        created.lastActivity = Date.now();
      };
      const forget = (): void => {
        if (this.flows.get(key) === created) this.flows.delete(key);
      };
      const created: Flow = now.whole === undefined ? this.appFlow(answer, forget) : this.interceptFlow(now.whole, address, port, answer, forget);
      this.flows.set(key, created);
      flow = created;
    }
    flow.lastActivity = Date.now();
    flow.send(payload);
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const flow of this.flows.values()) if (now - flow.lastActivity >= this.idleMs) flow.close();
    if (this.flows.size < this.maxFlows) this.fullLogged = false;
  }

  private appFlow(answer: (reply: Buffer) => void, forget: () => void): Flow {
    const socket = dgram.createSocket('udp4');
    let closed = false;
    // A connected UDP socket cannot send before connect() completes: datagrams wait (bounded) until then.
    let waiting: Buffer[] | undefined = [];
    let waitingBytes = 0;
    socket.on('message', (reply) => answer(reply));
    socket.on('error', () => undefined);
    socket.connect(this.port.containerPort, '127.0.0.1', () => {
      if (closed) return;
      for (const payload of waiting ?? []) socket.send(payload);
      waiting = undefined;
    });
    return {
      interceptId: undefined,
      lastActivity: Date.now(),
      send: (payload) => {
        if (closed) return;
        if (waiting === undefined) socket.send(payload);
        else if ((waitingBytes += payload.length) <= DROP_THRESHOLD_BYTES) waiting.push(Buffer.from(payload));
      },
      close: () => {
        if (closed) return;
        closed = true;
        forget();
        socket.close();
      },
    };
  }

  private interceptFlow(id: string, address: string, port: number, answer: (reply: Buffer) => void, forget: () => void): Flow {
    let stream: Duplex | undefined;
    let closed = false;
    let waiting: Buffer[] = [];
    let waitingBytes = 0;
    const flow: Flow = {
      interceptId: id,
      lastActivity: Date.now(),
      send: (payload) => {
        if (closed) return;
        if (stream === undefined) {
          waitingBytes += payload.length;
          if (waitingBytes <= DROP_THRESHOLD_BYTES) waiting.push(Buffer.from(payload));
        } else if (stream.writableLength <= DROP_THRESHOLD_BYTES) {
          stream.write(encodeDatagramCapsule(payload));
        }
      },
      close: () => {
        if (closed) return;
        closed = true;
        forget();
        waiting = [];
        stream?.destroy();
      },
    };
    this.deps.openAgentStream(id, sourceOf(address, port), false).then(
      (opened) => {
        if (closed) {
          opened.destroy();
          return;
        }
        stream = opened;
        const decoder = new CapsuleDecoder(answer);
        opened.on('data', (chunk: Buffer) => {
          try {
            decoder.push(chunk);
          } catch (error) {
            this.deps.log.debug('bad capsule on an intercepted udp flow', { port: this.port.containerPort, error: (error as Error).message });
            flow.close();
          }
        });
        opened.on('error', () => flow.close());
        opened.on('close', () => flow.close());
        opened.on('end', () => flow.close());
        for (const payload of waiting) opened.write(encodeDatagramCapsule(payload));
        waiting = [];
      },
      (error: Error) => {
        this.deps.log.debug('the intercepting client did not take a udp flow', { port: this.port.containerPort, error: error.message });
        flow.close();
      },
    );
    return flow;
  }
}
