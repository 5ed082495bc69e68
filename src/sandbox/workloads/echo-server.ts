// The sandbox's echo workload: answers every request with the pod's name and the request's source (echo-reply.ts).
// One port speaks HTTP/1.1, HTTP/2 with prior knowledge (a connection opening with the HTTP/2 preface goes to
// node:http2) and WebSocket (an echo prefixed with the pod's name), so that intercept tests see every kind of
// traffic an agent must route. It listens on IPv4 and IPv6 separately so that IPv4 clients show up as plain
// dotted addresses.
//
//   node echo-server.js --pod NAME [--namespace NS] [--port 80]

import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { WebSocketServer } from 'ws';
import { echoReply, renderEchoReply, type EchoIdentity } from './echo-reply.js';

export { formatEchoText, type EchoReply } from './echo-reply.js';

export interface EchoServerOptions {
  pod: string;
  namespace: string;
  port: number;
  /** One IPv4 and one IPv6 address to listen on; every address of the pod by default. */
  hosts?: { ipv4: string; ipv6: string };
}

/** What a client sends first on an HTTP/2 connection with prior knowledge (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
// A connection that says nothing for this long before its protocol is known is closed.
const SNIFF_TIMEOUT_MS = 30_000;
// WebSocket messages (and so the echoes) are bounded.
const MAX_WEBSOCKET_MESSAGE = 1024 * 1024;

export function parseEchoArgs(argv: readonly string[]): EchoServerOptions {
  const options: EchoServerOptions = { pod: process.env.POD_NAME ?? 'echo', namespace: process.env.POD_NAMESPACE ?? 'default', port: 80 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${argv[i]} needs a value`);
    switch (argv[i]) {
      case '--pod':
        options.pod = value;
        break;
      case '--namespace':
        options.namespace = value;
        break;
      case '--port':
        options.port = Number(value);
        if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new Error(`bad port ${value}`);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}`);
    }
    i++;
  }
  return options;
}

function handle(identity: EchoIdentity, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
  req.on('end', () => {
    const { body, headers } = renderEchoReply(req, echoReply(identity, req, bodyBytes));
    res.writeHead(200, headers);
    res.end(body);
  });
}

/**
 * An Upgrade request: WebSocket gets an echo socket; any other protocol (h2c, say) is answered as plain HTTP/1.1,
 * as a server that does not speak it may (RFC 9110 §7.8), and the connection closes.
 */
function upgrade(identity: EchoIdentity, sockets: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  if ((req.headers.upgrade ?? '').toLowerCase() === 'websocket') {
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => {
        const message = Buffer.concat([Buffer.from(`${identity.pod}: `), Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)]);
        ws.send(isBinary ? message : message.toString('utf8'));
      });
      ws.on('error', () => ws.terminate());
    });
    return;
  }
  const { body, headers } = renderEchoReply(req, echoReply(identity, req, head.length));
  const lines = Object.entries({ ...headers, connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(`HTTP/1.1 200 OK\r\n${lines.join('')}\r\n${body}`);
}

/**
 * Reads a new connection's first bytes until they are (or cannot be) the HTTP/2 preface, puts them back, and
 * tells which it was. At most the preface's 24 bytes are held.
 */
function sniffPreface(socket: Socket, decided: (http2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  const done = (http2: boolean): void => {
    socket.off('data', onData);
    socket.setTimeout(0);
    socket.pause();
    if (seen.length > 0) socket.unshift(seen);
    decided(http2);
    // The HTTP/1.1 server reads through 'data' events; an HTTP/2 session takes the buffered bytes itself (on the next
    // tick), which a resumed stream would have thrown away first.
    if (!http2) socket.resume();
  };
  const onData = (chunk: Buffer): void => {
    seen = Buffer.concat([seen, chunk]);
    const compared = Math.min(seen.length, HTTP2_PREFACE.length);
    const prefix = seen.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
    if (!prefix) done(false);
    else if (seen.length >= HTTP2_PREFACE.length) done(true);
  };
  socket.on('data', onData);
  socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
}

/** One listener: each connection goes to the HTTP/1.1 or the HTTP/2 server by its first bytes. */
class EchoListener extends Server {
  private readonly open = new Set<Socket>();

  constructor(identity: EchoIdentity) {
    super();
    const http1 = createHttpServer((req, res) => handle(identity, req, res));
    const http2 = createHttp2Server((req, res) => handle(identity, req, res));
    const sockets = new WebSocketServer({ noServer: true, maxPayload: MAX_WEBSOCKET_MESSAGE });
    sockets.on('headers', (headers) => headers.push(`x-served-by: ${identity.pod}`));
    http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(identity, sockets, req, socket, head));
    this.on('connection', (socket: Socket) => {
      this.open.add(socket);
      socket.once('close', () => this.open.delete(socket));
      socket.on('error', () => socket.destroy());
      sniffPreface(socket, (isHttp2) => (isHttp2 ? http2 : http1).emit('connection', socket));
    });
  }

  /** Stops listening and closes the connections too: kept-alive ones would hold the process open. */
  override close(callback?: (error?: Error) => void): this {
    super.close(callback);
    for (const socket of this.open) socket.destroy();
    return this;
  }
}

function listen(server: Server, host: string, port: number, ipv6Only: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the two listeners (IPv4 and IPv6) and returns them; closing one also closes its connections. */
export async function startEchoServer(options: EchoServerOptions): Promise<Server[]> {
  const hosts = options.hosts ?? { ipv4: '0.0.0.0', ipv6: '::' };
  const servers = [new EchoListener(options), new EchoListener(options)];
  await listen(servers[0]!, hosts.ipv4, options.port, false);
  // The IPv4 listener may have taken an ephemeral port (port 0): the IPv6 one takes the same.
  const port = (servers[0]!.address() as { port: number }).port;
  await listen(servers[1]!, hosts.ipv6, port, true);
  return servers;
}

async function main(): Promise<void> {
  const options = parseEchoArgs(process.argv.slice(2));
  const servers = await startEchoServer(options);
  const port = (servers[0]!.address() as { port: number }).port;
  console.log(`echo-server ${options.pod} (${options.namespace}) listening on 0.0.0.0:${port} and [::]:${port} (HTTP/1.1, h2c, WebSocket)`);
  const stop = (): void => {
    for (const s of servers) s.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(`echo-server: ${(error as Error).message}`);
    process.exitCode = 1;
  });
}
