// Request latency as an application sees it, run in the benchmark's workstation with the kernel's TCP. Sequential
// HTTP/1.1 GETs, as many as `count` allows within `seconds`:
//   keepalive: all on one connection; each timed from the request to the end of its response;
//   fresh:     each on a new connection; timed from connect() to the response's first byte (handshake included).
// Prints one JSON line: { requests, connections, p50Ms, p99Ms }.
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

interface Args {
  mode: 'keepalive' | 'fresh';
  host: string;
  port: number;
  count: number;
  seconds: number;
}

function keepAliveGet(a: Args, agent: Agent): Promise<{ ms: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request({ host: a.host, port: a.port, path: '/', agent }, (res) => {
      res.once('end', () => resolve({ ms: performance.now() - start, reused: req.reusedSocket })).resume();
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

/** A raw socket, so that the clock stops at the first byte read, not after an HTTP parser saw the headers. */
function freshGet(a: Args): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let firstByte = -1;
    const socket = connect({ host: a.host, port: a.port, noDelay: true });
    socket.once('connect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${a.host}\r\nConnection: close\r\n\r\n`));
    socket.once('data', () => (firstByte = performance.now() - start)).resume();
    socket.once('error', reject);
    // Waits for the server's close, so that the next request does not overlap with this one's teardown.
    socket.once('close', () => (firstByte < 0 ? reject(new Error('the connection closed without an answer')) : resolve(firstByte)));
  });
}

/** Nearest rank: the smallest sample with at least p % of the samples at or below it. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(a: Args): Promise<{ requests: number; connections: number; p50Ms: number; p99Ms: number }> {
  const end = performance.now() + a.seconds * 1000;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  let connections = 0;
  while (samples.length < a.count && performance.now() < end) {
    if (a.mode === 'fresh') {
      samples.push(await freshGet(a));
      connections++;
    } else {
      const { ms, reused } = await keepAliveGet(a, agent);
      samples.push(ms);
      if (!reused) connections++;
    }
  }
  agent.destroy();
  samples.sort((x, y) => x - y);
  return { requests: samples.length, connections, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99) };
}

main(JSON.parse(process.argv[2] ?? '{}') as Args).then(
  (result) => console.log(JSON.stringify(result)),
  (error: Error) => {
    console.log(JSON.stringify({ error: error.message }));
    process.exit(1);
  },
);
