// The cluster benchmarks' clients: real tools (iperf3, redis-benchmark) and our small Node clients, run in a
// sandbox's workstation namespace against its Services, each returning what it measured. Whether the packets go
// directly or through kubetun is the caller's doing (routes, `kubetun connect`): the clients are the same.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findService, workstationCommand, type SandboxConfig } from '../src/sandbox/index.js';

const execFileAsync = promisify(execFile);
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const LOAD_CLIENT = here('./load-client.js');
const LATENCY_CLIENT = here('./latency-client.js');
const DNS_TIMER = here('./dns-timer.js');

export interface RunOptions {
  /** Kills the command after this long (default 120 s). */
  timeoutMs?: number;
  /** Kills the command (SIGTERM) when aborted; the run then rejects. */
  signal?: AbortSignal;
  /** Set on top of the sandbox's workstation environment. */
  env?: Record<string, string>;
}

/** A sandbox's workstation, as the clients use it: a command runner and the ClusterIPs of the Services measured. */
export interface Workstation {
  /** Runs `command` in the workstation namespace; resolves to its stdout, rejects when it fails. */
  run(command: readonly string[], options?: RunOptions): Promise<string>;
  readonly targets: { echo: string; redis: string; iperf: string };
}

export function workstation(config: SandboxConfig): Workstation {
  const clusterIp = (name: string): string => {
    const service = findService(config, name);
    if (service === undefined) throw new Error(`the sandbox has no Service ${name}`);
    return service.clusterIPs.ipv4;
  };
  return {
    async run(command, options = {}) {
      const { file, args, env } = workstationCommand(config, command);
      const { stdout } = await execFileAsync(file, args, {
        env: { ...process.env, ...env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 << 20,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return stdout;
    },
    targets: { echo: clusterIp('echo'), redis: clusterIp('redis'), iperf: clusterIp('iperf') },
  };
}

interface IperfSum {
  bytes: number;
  bits_per_second: number;
  lost_percent?: number;
}

interface IperfReport {
  end: { sum?: IperfSum; sum_received?: IperfSum };
  error?: string;
}

/**
 * Waits out a busy iperf3 server: it runs one test at a time, and may still be busy right after the previous one
 * (a stopped bulk transfer's teardown can also reset the next control connection: said on stderr, then retried).
 */
async function untilServerFree<T>(attempt: () => Promise<T | 'busy'>): Promise<T> {
  for (let tries = 0; tries < 20; tries++) {
    const result = await attempt();
    if (result !== 'busy') return result;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('the iperf3 server stayed busy');
}

/** One iperf3 client run to `ws.targets.iperf` with `-J`: its report, or 'busy'. */
async function iperfJson(ws: Workstation, args: readonly string[], seconds: number): Promise<IperfReport | 'busy'> {
  const out = await ws.run(['iperf3', '-c', ws.targets.iperf, '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 60) * 1000 });
  const report = JSON.parse(out) as IperfReport;
  if (report.end.sum_received !== undefined) return report;
  if (/server is busy/.test(report.error ?? '')) return 'busy';
  if (/unable to receive control message: Connection reset by peer/.test(report.error ?? '')) {
    process.stderr.write(`iperf3 ${args.join(' ')}: the control connection was reset; trying again\n`);
    return 'busy';
  }
  throw new Error(`iperf3 measured nothing: ${report.error ?? out.slice(0, 300)}`);
}

export interface IperfTcpOptions {
  flows: number;
  /** Download (the server sends: -R) instead of upload. */
  reverse: boolean;
  seconds: number;
}

/** TCP throughput, summed over the flows, as the receiver counted it; and the bytes it received (for cost per byte). */
export async function iperfTcpRun(ws: Workstation, o: IperfTcpOptions): Promise<{ gbitPerSecond: number; bytes: number }> {
  const args = ['-P', String(o.flows), ...(o.reverse ? ['-R'] : [])];
  const received = (await untilServerFree(() => iperfJson(ws, args, o.seconds))).end.sum_received!;
  return { gbitPerSecond: received.bits_per_second / 1e9, bytes: received.bytes };
}

/** TCP throughput in Gbit/s. */
export async function iperfTcp(ws: Workstation, o: IperfTcpOptions): Promise<number> {
  return (await iperfTcpRun(ws, o)).gbitPerSecond;
}

export interface IperfUdpOptions {
  /** The sending rate (-b). */
  rateMbit: number;
  seconds: number;
  /**
   * Datagram payload (-l; default 1400). Fixed, because iperf3 otherwise sizes datagrams by the control
   * connection's MSS, which differs between the direct path and kubetun's large-MTU TUN.
   */
  packetBytes?: number;
}

/** Upload of UDP datagrams at a fixed rate: what arrived (Mbit/s) and the share lost on the way. */
export async function iperfUdp(ws: Workstation, o: IperfUdpOptions): Promise<{ deliveredMbit: number; lossPercent: number }> {
  const args = ['-u', '-b', `${o.rateMbit}M`, '-l', String(o.packetBytes ?? 1400)];
  const report = await untilServerFree(() => iperfJson(ws, args, o.seconds));
  // The sender's rate less the loss the server reported: iperf3 3.12's UDP receiver sum repeats the bytes sent.
  const sent = report.end.sum!;
  const lossPercent = sent.lost_percent ?? 0;
  return { deliveredMbit: (sent.bits_per_second / 1e6) * (1 - lossPercent / 100), lossPercent };
}

/** A bulk TCP transfer both ways at once (iperf3 --bidir), running in the background until stopped. */
export interface BulkTransfer {
  stop(): Promise<void>;
}

/**
 * Starts an upload and a download through the workstation's path to the iperf3 Service, and returns once they have
 * run `warmupMs`. Throws when iperf3 ended before that (it would otherwise measure an idle path). `maxSeconds`
 * bounds it should stop() never come.
 */
export async function startBulk(ws: Workstation, o: { warmupMs?: number; maxSeconds?: number } = {}): Promise<BulkTransfer> {
  const maxSeconds = o.maxSeconds ?? 120;
  return untilServerFree(async () => {
    const abort = new AbortController();
    const running = iperfJson(ws, ['--bidir'], maxSeconds).catch((error: Error) => {
      if (abort.signal.aborted) return 'stopped' as const;
      throw error;
    });
    const early = await Promise.race([running, new Promise<'running'>((r) => setTimeout(() => r('running'), o.warmupMs ?? 1000))]);
    if (early === 'busy') return 'busy';
    if (early !== 'running') throw new Error('the bulk transfer ended before it was stopped');
    return {
      async stop() {
        abort.abort();
        await running;
      },
    };
  });
}

/** GET requests per second of redis-benchmark with `clients` connections, `requests` in all. */
export async function redis(ws: Workstation, o: { clients: number; requests: number }): Promise<number> {
  const out = await ws.run(['redis-benchmark', '-h', ws.targets.redis, '-c', String(o.clients), '-n', String(o.requests), '-t', 'get', '-q']);
  const match = /GET: ([\d.]+) requests per second/.exec(out);
  if (match === null) throw new Error(`redis-benchmark printed: ${out}`);
  return Number(match[1]);
}

/** The last line a Node client printed, parsed; its { error } thrown. */
function clientResult<T>(out: string): T {
  const result = JSON.parse(out.trim().split('\n').pop()!) as T & { error?: string };
  if (result.error !== undefined) throw new Error(result.error);
  return result;
}

/** New connections per second to the echo Service (connect, close, wait for the server's close), 32 in flight by default. */
export async function connRate(ws: Workstation, o: { seconds: number; concurrency?: number }): Promise<number> {
  const args = { host: ws.targets.echo, port: 80, seconds: o.seconds, concurrency: o.concurrency ?? 32 };
  return clientResult<{ perSecond: number }>(await ws.run(['node', LOAD_CLIENT, 'connRate', JSON.stringify(args)])).perSecond;
}

/** Median time of `count` DNS lookups of new names and of one cached name, asked of `server`. */
export async function dnsTimes(ws: Workstation, server: string, count = 200): Promise<{ coldMs: number; cachedMs: number }> {
  return clientResult<{ coldMs: number; cachedMs: number }>(await ws.run(['node', DNS_TIMER, server, String(count)]));
}

export interface Latency {
  requests: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LatencyOptions {
  /** keepalive: sequential requests on one connection; fresh: a new connection each, timed to the first byte. */
  mode: 'keepalive' | 'fresh';
  /** At most this many requests… */
  count: number;
  /** …and for at most this long. */
  seconds: number;
}

/** HTTP/1.1 GET latency to the echo Service (bench/latency-client.ts). */
export async function httpLatency(ws: Workstation, o: LatencyOptions): Promise<Latency> {
  const args = { mode: o.mode, host: ws.targets.echo, port: 80, count: o.count, seconds: o.seconds };
  const result = clientResult<Latency & { connections: number }>(await ws.run(['node', LATENCY_CLIENT, JSON.stringify(args)], { timeoutMs: (o.seconds + 60) * 1000 }));
  // One connection for keep-alive, else the numbers include handshakes.
  if (o.mode === 'keepalive' && result.connections !== 1) throw new Error(`the keep-alive client needed ${result.connections} connections`);
  return { requests: result.requests, p50Ms: result.p50Ms, p99Ms: result.p99Ms };
}

/** Keep-alive request latency while a bulk transfer runs both ways through the same path (bufferbloat). */
export async function latencyUnderLoad(ws: Workstation, o: { count: number; seconds: number; warmupMs?: number }): Promise<Latency> {
  const bulk = await startBulk(ws, { maxSeconds: o.seconds + 30, ...(o.warmupMs === undefined ? {} : { warmupMs: o.warmupMs }) });
  try {
    return await httpLatency(ws, { mode: 'keepalive', count: o.count, seconds: o.seconds });
  } finally {
    await bulk.stop();
  }
}
