// The sandbox's echo workload: an HTTP server that answers every request with the pod's name and the request's
// source address and port, as text or (Accept: application/json, or ?format=json) JSON. It listens on IPv4 and
// IPv6 separately so that IPv4 clients show up as plain dotted addresses.
//
//   node echo-server.js --pod NAME [--namespace NS] [--port 80]

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';

export interface EchoServerOptions {
  pod: string;
  namespace: string;
  port: number;
  /** One IPv4 and one IPv6 address to listen on; every address of the pod by default. */
  hosts?: { ipv4: string; ipv6: string };
}

export interface EchoReply {
  pod: string;
  namespace: string;
  client: { address: string; port: number };
  server: { address: string; port: number };
  method: string;
  path: string;
  host: string | null;
  /** Bytes of request body received. */
  bodyBytes: number;
}

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

export function formatEchoText(reply: EchoReply): string {
  return (
    `pod: ${reply.pod}\n` +
    `namespace: ${reply.namespace}\n` +
    `client: ${reply.client.address} port ${reply.client.port}\n` +
    `server: ${reply.server.address} port ${reply.server.port}\n` +
    `request: ${reply.method} ${reply.path}${reply.host === null ? '' : ` host ${reply.host}`}\n` +
    `body bytes: ${reply.bodyBytes}\n`
  );
}

function wantsJson(req: IncomingMessage, url: URL): boolean {
  return url.searchParams.get('format') === 'json' || (req.headers.accept ?? '').includes('application/json');
}

function handle(options: EchoServerOptions, req: IncomingMessage, res: ServerResponse): void {
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://echo');
    const reply: EchoReply = {
      pod: options.pod,
      namespace: options.namespace,
      client: { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 },
      server: { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 },
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      host: req.headers.host ?? null,
      bodyBytes,
    };
    const json = wantsJson(req, url);
    const body = json ? `${JSON.stringify(reply)}\n` : formatEchoText(reply);
    res.writeHead(200, {
      'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-pod-name': options.pod,
    });
    res.end(body);
  });
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

/** Starts the two listeners (IPv4 and IPv6) and returns them. */
export async function startEchoServer(options: EchoServerOptions): Promise<Server[]> {
  const hosts = options.hosts ?? { ipv4: '0.0.0.0', ipv6: '::' };
  const servers = [createServer(handle.bind(null, options)), createServer(handle.bind(null, options))];
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
  console.log(`echo-server ${options.pod} (${options.namespace}) listening on 0.0.0.0:${port} and [::]:${port}`);
  const stop = (): void => {
    for (const s of servers) s.close();
    // Keep-alive connections would hold the process open.
    for (const s of servers) s.closeAllConnections();
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
