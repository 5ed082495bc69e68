// What the traffic agent tests share: free ports, a real app (TCP and UDP, answering "app:" + what it got), an
// agent environment pointing at a manager double, and a logger the tests wait on (the agent's own log lines are
// its observable state changes).

import * as dgram from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import * as net from 'node:net';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import type { AgentEnvironment } from '../../src/agent/agent-environment.js';
import { createLogger, type Logger } from '../../src/log/logger.js';

export async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'tcp') {
    const server = net.createServer().listen(0, '::');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    server.close();
    return port;
  }
  const socket = dgram.createSocket('udp6');
  socket.bind(0, '::');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

/** A TCP app on 127.0.0.1 answering each chunk with "app:" + the chunk. */
export async function tcpApp(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk) => socket.write(`app:${chunk.toString()}`));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A UDP app on 127.0.0.1 answering each datagram with "app:" + the datagram. */
export async function udpApp(): Promise<{ port: number; close(): void }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (payload, from) => socket.send(`app:${payload.toString()}`, from.port, from.address));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { port: socket.address().port, close: () => socket.close() };
}

/** Sends `text` on a new connection and resolves with the first answer. */
export async function tcpExchange(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    socket.write(text);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    return chunk.toString();
  } finally {
    socket.destroy();
  }
}

/** Sends one datagram from a new socket and resolves with the first answer. */
export async function udpExchange(port: number, text: string): Promise<string> {
  const socket = dgram.createSocket('udp4');
  try {
    socket.send(text, port, '127.0.0.1');
    const [payload] = (await once(socket, 'message')) as [Buffer];
    return payload.toString();
  } finally {
    socket.close();
  }
}

export function agentEnvironment(managerPort: number, ports: AgentPortConfig[], replaced = false): AgentEnvironment {
  return {
    config: {
      workload: 'echo',
      kind: 'Deployment',
      namespace: 'default',
      container: 'app',
      replaced,
      manager: { host: '127.0.0.1', port: managerPort },
      ports,
    },
    pod: 'echo-7d9f-abcde',
    podNamespace: 'default',
    podIp: '127.0.0.1',
    appEnvironment: { GREETING: 'hello' },
  };
}

/** A logger whose messages the test can wait for (each message is also an event named by it). */
export class LogWatch extends EventEmitter {
  readonly messages: string[] = [];
  readonly log: Logger = createLogger('debug', (line) => {
    const { msg } = JSON.parse(line) as { msg: string };
    this.messages.push(msg);
    this.emit(msg);
  });

  /** Resolves on the next line with `message` (or at once if one came since `since`). */
  next(message: string, since = this.messages.length): Promise<void> {
    if (this.messages.slice(since).includes(message)) return Promise.resolve();
    return once(this, message).then(() => undefined);
  }
}
