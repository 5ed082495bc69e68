// The kernel side of the stack's end-to-end tests: run inside a test namespace with
// `ip netns exec NS node dist/test/helpers/kernel-peer.js MODE JSON-ARGS`, it uses the kernel's own TCP and UDP
// sockets against addresses routed into the TUN, and prints one JSON line with what it saw.
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { hashStream, writePattern } from './pattern.js';

interface Args {
  host: string;
  port: number;
  bytes?: number;
  seed?: number;
  connections?: number;
  count?: number;
  sizes?: number[];
  timeoutMs?: number;
  readDelayMs?: number;
  connectTimeoutMs?: number;
}

/** Connects, from `localPort` when given (libuv binds it with SO_REUSEADDR); fails after `timeoutMs` if given. */
function open(host: string, port: number, localPort?: number, timeoutMs?: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localPort, allowHalfOpen: true });
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            socket.destroy();
            reject(Object.assign(new Error(`connect took over ${timeoutMs} ms`), { code: 'TIMEOUT' }));
          }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const modes: Record<string, (a: Args) => Promise<unknown>> = {
  /** Connect and report how the attempt ended and how long it took. */
  async connect(a) {
    const start = performance.now();
    try {
      const socket = await open(a.host, a.port);
      socket.destroy();
      return { result: 'connected', ms: performance.now() - start };
    } catch (error) {
      return { result: (error as NodeJS.ErrnoException).code, ms: performance.now() - start };
    }
  },
  /** Send `bytes` of the pattern, half-close, then read the peer's reply (text) until it closes. */
  async send(a) {
    const socket = await open(a.host, a.port);
    const start = performance.now();
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise((resolve) => socket.once('end', resolve));
    const sent = await writePattern(socket, a.seed ?? 1, a.bytes ?? 0);
    await closed;
    return { sent, reply: Buffer.concat(chunks).toString(), ms: performance.now() - start };
  },
  /** Read until the stack half-closes, then send `bytes` of the pattern on the still-open direction. */
  async recvThenSend(a) {
    const socket = await open(a.host, a.port);
    const got = await hashStream(socket);
    const sent = await writePattern(socket, a.seed ?? 1, a.bytes ?? 0);
    await new Promise((resolve) => socket.once('close', resolve));
    return { got, sent };
  },
  /** Read everything the stack sends until it closes; optionally slowly. */
  async recv(a) {
    const socket = await open(a.host, a.port);
    const start = performance.now();
    if (a.readDelayMs !== undefined) {
      socket.pause();
      await new Promise((r) => setTimeout(r, a.readDelayMs));
      socket.resume();
    }
    const got = await hashStream(socket);
    socket.end();
    return { ...got, ms: performance.now() - start };
  },
  /**
   * Port reuse (RFC 6191): read until the stack closes first (its side of the connection stays in TIME-WAIT),
   * close, then connect again from the same local port and read again; reports how long the second connect took.
   */
  async reconnect(a) {
    // A port below the ephemeral range, bound explicitly both times: Node cannot set SO_REUSEADDR on a client,
    // so re-binding a port the kernel picked collides with other tests' TIME-WAIT sockets on that port (other
    // peers, same port number: EADDRINUSE for up to 60 s).
    const first = await open(a.host, a.port, 20_000 + Math.floor(Math.random() * 10_000));
    const localPort = first.localPort!;
    const firstGot = await hashStream(first);
    first.end();
    await new Promise((resolve) => first.once('close', resolve));
    // The stack's ACK of our FIN ends the kernel's LAST-ACK; until then the port is still taken (EADDRINUSE at
    // bind, or EADDRNOTAVAIL at connect when the bind went through but the 4-tuple is still the old socket's). On
    // a loaded machine that ACK can take longer than a fixed pause: wait for the port (reported as portWaitMs),
    // then time the connect itself, which is what RFC 6191 is about.
    const waitStart = performance.now();
    let second: Socket | undefined;
    let start = waitStart;
    for (;;) {
      start = performance.now();
      try {
        second = await open(a.host, a.port, localPort, a.connectTimeoutMs ?? 5000);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'EADDRINUSE' && code !== 'EADDRNOTAVAIL') || start - waitStart > 2000) {
          return { localPort, first: firstGot, result: code, ms: performance.now() - start, portWaitMs: start - waitStart };
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const ms = performance.now() - start;
    const sameTuple = second.localPort === localPort;
    const secondGot = await hashStream(second);
    second.end();
    return { localPort, first: firstGot, result: 'connected', ms, portWaitMs: start - waitStart, sameTuple, second: secondGot };
  },
  /** Sends `bytes` of the pattern and, at the same time, reads what the stack sends until it closes. */
  async duplex(a) {
    const socket = await open(a.host, a.port);
    const [sent, got] = await Promise.all([writePattern(socket, a.seed ?? 1, a.bytes ?? 0), hashStream(socket)]);
    return { sent, got };
  },
  /** Many concurrent connections, each sends `bytes`, half-closes and expects the same bytes back. */
  async echoMany(a) {
    const n = a.connections ?? 1;
    const bytes = a.bytes ?? 65536;
    const one = async (i: number): Promise<boolean> => {
      const socket = await open(a.host, a.port);
      const [sent, back] = await Promise.all([writePattern(socket, i + 1, bytes), hashStream(socket)]);
      return back.sha256 === sent && back.bytes === bytes;
    };
    const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => one(i)));
    const ok = results.filter((r) => r.status === 'fulfilled' && r.value).length;
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
    return { ok, failed: n - ok, errors: errors.slice(0, 5) };
  },
  /** Echoes every connection to `host`:`port` (each gets back what it sends, then a FIN after its own) until
   *  killed or the helper's time limit. Not socat's PIPE: socat, the only reader of its own 64 KiB pipe, writes
   *  8 KiB into it once poll says it is writable, which needs only one free page; after socket reads of odd
   *  sizes the write blocks half done and nothing ever wakes it (seen in the active-open echo test: socat in
   *  anon_pipe_write, 786 KB unread, all of the stack's data acknowledged; a Linux client alone does it too).
   *  Node's non-blocking streams instead stop reading while the echo is backed up. */
  echoServer(a) {
    return new Promise((_resolve, reject) => {
      const server = createServer({ allowHalfOpen: true }, (socket) => {
        socket.on('error', () => socket.destroy());
        socket.pipe(socket);
      });
      server.once('error', reject);
      server.listen(a.port, a.host);
    });
  },
  /** UDP: send `count` datagrams cycling through `sizes`, expect each echoed intact. */
  async udpEcho(a) {
    const v6 = a.host.includes(':');
    const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    const sizes = a.sizes ?? [100];
    const count = a.count ?? 1;
    const expected = new Map<number, number>();
    let received = 0;
    let corrupt = 0;
    const done = new Promise<void>((resolve) => {
      socket.on('message', (msg) => {
        const seq = msg.readUInt32BE(0);
        const size = expected.get(seq);
        if (size === undefined || size !== msg.length || msg[msg.length - 1] !== (seq & 0xff)) corrupt++;
        expected.delete(seq);
        received++;
        if (received === count) resolve();
      });
    });
    socket.connect(a.port, a.host);
    await new Promise((r) => socket.once('connect', r));
    // Paced in small windows so neither the kernel's nor the stack's queues are overrun: the test is about
    // correctness, not about UDP's right to drop under overload.
    const window = 32;
    for (let seq = 0; seq < count; seq++) {
      const size = sizes[seq % sizes.length]!;
      const msg = Buffer.alloc(size, seq & 0xff);
      msg.writeUInt32BE(seq, 0);
      expected.set(seq, size);
      socket.send(msg);
      while (seq + 1 - received >= window) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, a.timeoutMs ?? 10_000))]);
    socket.close();
    return { sent: count, received, corrupt };
  },
};

const [mode, json] = process.argv.slice(2);
const run = modes[mode ?? ''];
if (run === undefined) {
  console.error(`kernel-peer: unknown mode ${mode}; one of ${Object.keys(modes).join(', ')}`);
  process.exit(2);
}
const timeout = setTimeout(() => {
  console.log(JSON.stringify({ error: 'kernel-peer timed out' }));
  process.exit(3);
}, 120_000);
run(JSON.parse(json ?? '{}') as Args).then(
  (result) => {
    clearTimeout(timeout);
    console.log(JSON.stringify(result));
  },
  (error: Error) => {
    clearTimeout(timeout);
    console.log(JSON.stringify({ error: error.message, code: (error as NodeJS.ErrnoException).code }));
  },
);
