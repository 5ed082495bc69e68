// The kubelet's own API, over HTTPS on the node's address: what the API server calls for a pod's `portforward`
// subresource (WebSocket only: the kubelet's channel protocol, see pkg/kubelet/cri/streaming/portforward/
// websocket.go; each port dialed at localhost inside the pod, see pod-dialer.ts) and for `log` (/containerLogs). The API server does not check a kubelet's certificate unless
// told to, so a self-signed one does.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { runCommand } from '../host-commands.js';
import type { Logger } from '../../log/logger.js';

export interface PodEndpoint {
  /** Connects to localhost:`port` in the pod's network namespace. */
  dial(port: number): Promise<Socket>;
  logFile(container: string): string;
  containers: string[];
}

export interface KubeletServerOptions {
  address: string;
  port: number;
  /** Where the self-signed certificate is kept. */
  certDir: string;
  nodeName: string;
  lookupPod(namespace: string, name: string): PodEndpoint | null;
  log: Logger;
}

/** Subprotocols in the order we prefer them; "" (none offered) is binary framing. */
const BINARY_PROTOCOLS = ['v4.channel.k8s.io', 'channel.k8s.io', 'portforward.k8s.io'];
const BASE64_PROTOCOLS = ['v4.base64.channel.k8s.io', 'base64.channel.k8s.io'];
// Past this much unsent data toward the client, reading from the pod pauses.
const HIGH_WATER = 4 * 1024 * 1024;

async function ensureCertificate(dir: string, nodeName: string, address: string): Promise<{ key: Buffer; cert: Buffer }> {
  const keyFile = join(dir, 'kubelet.key');
  const certFile = join(dir, 'kubelet.crt');
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    mkdirSync(dir, { recursive: true });
    await runCommand('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
      '-subj', `/CN=${nodeName}`, '-addext', `subjectAltName=DNS:${nodeName},IP:${address}`,
      '-keyout', keyFile, '-out', certFile,
    ], { timeoutMs: 30_000 });
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile) };
}

/** The ports of `?port=80&port=8080` or `?ports=80,8080`; null when one is not a port number. */
export function parsePorts(search: URLSearchParams): number[] | null {
  // Clients ask the API server for `ports`; the API server asks the kubelet for `port`.
  const texts = [...search.getAll('port'), ...search.getAll('ports')].flatMap((p) => p.split(','));
  const ports = texts.map((t) => (/^[0-9]{1,5}$/.test(t.trim()) ? Number(t.trim()) : NaN));
  return ports.length > 0 && ports.every((p) => p >= 1 && p <= 65535) ? ports : null;
}

/** Splits /portForward/<ns>/<pod>[/<uid>] and /containerLogs/<ns>/<pod>/<container>. */
function route(pathname: string): { kind: string; parts: string[] } {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  return { kind: parts[0] ?? '', parts: parts.slice(1) };
}

// ws hands over every message, text or binary, as a Buffer.
interface Framing {
  encode(channel: number, data: Buffer): Buffer | string;
  decode(message: Buffer): { channel: number; data: Buffer } | null;
}

const binaryFraming: Framing = {
  encode: (channel, data) => Buffer.concat([Buffer.from([channel]), data]),
  decode: (message) => (message.length === 0 ? null : { channel: message[0]!, data: message.subarray(1) }),
};

const base64Framing: Framing = {
  encode: (channel, data) => `${String.fromCharCode(48 + channel)}${data.toString('base64')}`,
  decode: (message) => {
    const text = message.toString('utf8');
    return text.length === 0 ? null : { channel: text.charCodeAt(0) - 48, data: Buffer.from(text.slice(1), 'base64') };
  },
};

/** Serves one port-forward connection: channel 2i carries port i's data, 2i+1 its errors. */
export function servePortForward(ws: WebSocket, dial: PodEndpoint['dial'], podName: string, ports: number[], log: Logger): void {
  const framing = BASE64_PROTOCOLS.includes(ws.protocol) ? base64Framing : binaryFraming;
  log.debug('port-forward opened', { pod: podName, ports, protocol: ws.protocol });
  // undefined while dialing; null once closed or failed.
  const sockets: (Socket | null | undefined)[] = ports.map(() => undefined);
  // What the client sends before its port's connection is made (an HTTP/2 preface), written once it is.
  const early: Buffer[][] = ports.map(() => []);
  let open = ports.length;
  let closed = false;
  const send = (channel: number, data: Buffer, done?: () => void): void => {
    if (ws.readyState === ws.OPEN) ws.send(framing.encode(channel, data), done);
  };
  const closeOne = (): void => {
    if (--open === 0) ws.close(1000);
  };
  const failed = (i: number, port: number, error: Error): void => {
    const message = `error forwarding port ${port} to pod ${podName}: ${error.message}`;
    log.debug('port-forward failed', { pod: podName, port, error: error.message });
    send(2 * i + 1, Buffer.from(message), () => undefined);
    sockets[i] = null;
    early[i] = [];
    closeOne();
  };
  const connected = (i: number, port: number, socket: Socket): void => {
    if (closed) {
      socket.destroy();
      return;
    }
    sockets[i] = socket;
    socket.on('data', (chunk: Buffer) => {
      if (ws.bufferedAmount <= HIGH_WATER) {
        send(2 * i, chunk);
        return;
      }
      // Past the mark: reading resumes once this chunk has reached the client's socket.
      socket.pause();
      send(2 * i, chunk, () => socket.resume());
    });
    socket.on('drain', () => ws.resume());
    socket.once('error', (error) => failed(i, port, error));
    socket.once('close', (hadError) => {
      if (hadError) return;
      sockets[i] = null;
      closeOne();
    });
    for (const data of early[i]!.splice(0)) if (!socket.write(data)) ws.pause();
  };
  ports.forEach((port, i) => {
    // Each channel begins with its port, little-endian, as the kubelet sends it.
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16LE(port);
    send(2 * i, portBytes);
    send(2 * i + 1, portBytes);
    dial(port).then(
      (socket) => connected(i, port, socket),
      (error: Error) => {
        if (!closed) failed(i, port, error);
      },
    );
  });
  ws.on('message', (message: Buffer) => {
    const frame = framing.decode(message);
    if (frame === null || frame.channel % 2 !== 0 || frame.data.length === 0) return;
    const i = frame.channel / 2;
    const socket = sockets[i];
    if (socket === undefined && i < ports.length) {
      early[i]!.push(frame.data);
      return;
    }
    if (socket === undefined || socket === null) return;
    if (!socket.write(frame.data)) ws.pause();
  });
  ws.on('close', () => {
    closed = true;
    for (const socket of sockets) socket?.destroy();
  });
  // 'close' follows every 'error'.
  ws.on('error', () => undefined);
}

function tail(text: string, lines: number | null): string {
  if (lines === null) return text;
  const all = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return lines === 0 ? '' : `${all.slice(-lines).join('\n')}\n`;
}

export async function startKubeletServer(options: KubeletServerOptions): Promise<Server> {
  const { key, cert } = await ensureCertificate(options.certDir, options.nodeName, options.address);
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => [...BINARY_PROTOCOLS, ...BASE64_PROTOCOLS].find((p) => offered.has(p)) ?? false,
  });
  const server = createServer({ key, cert }, (req, res) => {
    options.log.debug('kubelet API request', { method: req.method, url: req.url });
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const { kind, parts } = route(url.pathname);
    if (kind === 'healthz') {
      res.end('ok');
      return;
    }
    if (kind === 'containerLogs' && parts.length === 3) {
      const pod = options.lookupPod(parts[0]!, parts[1]!);
      if (pod === null || !pod.containers.includes(parts[2]!)) {
        res.writeHead(404).end(`container ${parts[2]} of pod ${parts[0]}/${parts[1]} is not on node ${options.nodeName}\n`);
        return;
      }
      const file = pod.logFile(parts[2]!);
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const tailLines = url.searchParams.get('tailLines');
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(tail(text, tailLines === null ? null : Number(tailLines)));
      return;
    }
    if (kind === 'portForward') {
      res.writeHead(400).end('port-forward needs a WebSocket upgrade (SPDY is not supported by the sandbox kubelet)\n');
      return;
    }
    res.writeHead(404).end(`not found: ${url.pathname}\n`);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    options.log.debug('kubelet API upgrade', { url: req.url, protocols: req.headers['sec-websocket-protocol'] });
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const { kind, parts } = route(url.pathname);
    const refuse = (status: number, message: string): void => {
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Bad Request'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${message}\n`);
    };
    if (kind !== 'portForward' || parts.length < 2 || parts.length > 3) {
      refuse(404, `not found: ${url.pathname}`);
      return;
    }
    const ports = parsePorts(url.searchParams);
    if (ports === null) {
      refuse(400, 'give the ports to forward as ?port=N (1-65535), repeated or comma-separated');
      return;
    }
    const pod = options.lookupPod(parts[0]!, parts[1]!);
    if (pod === null) {
      refuse(404, `pod ${parts[0]}/${parts[1]} is not running on node ${options.nodeName}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => servePortForward(ws, pod.dial, `${parts[0]}/${parts[1]}`, ports, options.log));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
