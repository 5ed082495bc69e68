// The benchmark's connection-rate and idle-flow client, run inside the benchmark namespace with the kernel's TCP.
// Prints one JSON line. (Throughput is driven by socat, in C, so the client is not what limits it.)
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { HANGUP_PORT } from './bench-protocol.js';

interface Args {
  host: string;
  /** The port for connRate and holdIdle (default: the hangup port). */
  port?: number;
  seconds: number;
  concurrency: number;
  connections: number;
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function parallel(flows: number, one: () => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: flows }, one));
}

const modes: Record<string, (a: Args) => Promise<unknown>> = {
  /** Connect, close, wait for the server's close; as many as fit in `seconds` with `concurrency` in flight. */
  async connRate(a) {
    const end = performance.now() + a.seconds * 1000;
    let done = 0;
    let failed = 0;
    const worker = async (): Promise<void> => {
      while (performance.now() < end) {
        try {
          const socket = await open(a.host, a.port ?? HANGUP_PORT);
          socket.end();
          socket.resume();
          await new Promise((r) => socket.once('close', r));
          done++;
        } catch {
          failed++;
        }
      }
    };
    const start = performance.now();
    await parallel(a.concurrency, worker);
    return { perSecond: done / ((performance.now() - start) / 1000), failed };
  },
  /** Opens `connections` idle connections, says "ready", holds them until stdin closes. */
  async holdIdle(a) {
    const sockets: Socket[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < a.connections) {
        next++;
        sockets.push(await open(a.host, a.port ?? HANGUP_PORT));
      }
    };
    await parallel(a.concurrency, worker);
    console.log(JSON.stringify({ ready: sockets.length }));
    await new Promise((r) => process.stdin.once('end', r).resume());
    for (const s of sockets) s.destroy();
    return { held: sockets.length };
  },
};

const [mode, json] = process.argv.slice(2);
const run = modes[mode ?? ''];
if (run === undefined) {
  console.error(`load-client: unknown mode ${mode}`);
  process.exit(2);
}
run(JSON.parse(json ?? '{}') as Args).then(
  (result) => console.log(JSON.stringify(result)),
  (error: Error) => {
    console.log(JSON.stringify({ error: error.message }));
    process.exit(1);
  },
);
