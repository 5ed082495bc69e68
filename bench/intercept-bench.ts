// The intercept benchmark (npm run bench, after the tunnel's): its own sandbox cluster, kubetun installed and
// connected, a laptop echo server and iperf3 server in the workstation. Every client runs in the redis pod's network
// namespace (an in-cluster client) and measures, same run, the direct path to a pod against the intercepted ones:
// wrk (HTTP/1.1 keep-alive) through a personal intercept with and without a matching header and through a global
// one; iperf3 through a global intercept; and the time from `kubetun intercept` to the laptop's first answer, with
// a rollout (a workload never intercepted) and without one (its agents are already there).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { podNetnsName } from '../src/sandbox/kubelet/pod-env.js';
import { podsOf, readCluster, sandboxConfig, sandboxDown, sandboxUp, workstationCommand, type ClusterPod } from '../src/sandbox/index.js';
import { mergeResults, printResults, type Result } from './bench-results.js';

const ECHO_SERVER = fileURLToPath(new URL('../src/sandbox/workloads/echo-server.js', import.meta.url));
const NAME = `ktn${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const SECONDS = Number(process.env.KUBETUN_BENCH_SECONDS ?? 3);
const LAPTOP_HTTP = 8080;
const LAPTOP_IPERF = 8081;
const ECHO_URL = 'http://echo.default/';
const MATCH = 'x-dev: alice';
/** The target of issue 9: a personal intercept's non-matching request costs at most this much p50 latency. */
const P50_OVERHEAD_TARGET_US = 150;
const READY_TARGET_S = 10;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

function check(what: string, r: Run): string {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${(r.stderr + r.stdout).trim().slice(0, 500)}`);
  return r.stdout;
}

/** A command in the workstation (the laptop). */
function ws(command: string[]): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  return run(file, args, { ...process.env, ...env }, 180_000);
}

const kubetun = async (...args: string[]): Promise<string> => check(`kubetun ${args.join(' ')}`, await ws(['kubetun', ...args]));

/** A laptop server in the workstation, ended by PID at the end. */
function laptop(command: string[]): ChildProcess {
  const { file, args, env } = workstationCommand(config, command);
  return spawn(file, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
}

let clientNetns = '';
/** A command in the in-cluster client's network namespace (the redis pod's). */
const inPod = (command: string[], timeoutMs = 120_000): Promise<Run> => run('ip', ['netns', 'exec', clientNetns, ...command], process.env, timeoutMs);

const netnsOf = (pod: ClusterPod): string => podNetnsName(config.podNetnsPrefix, { metadata: { name: pod.name, namespace: pod.namespace, uid: '' } });

/** Who answered one request from the client pod: the x-served-by header of the echo servers ('' if none). */
async function servedBy(url: string, headers: string[] = []): Promise<string> {
  const r = await inPod(['curl', '-sS', '-m', '5', '-o', '/dev/null', '-D', '-', ...headers.flatMap((h) => ['-H', h]), url]);
  return /^x-served-by: *(\S+)/im.exec(r.stdout)?.[1] ?? '';
}

async function until(what: string, seconds: number, condition: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > end) throw new Error(`${what}: not within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every request of a few goes where it should: a rollout may still be sending some to a pod without the intercept. */
async function routed(url: string, headers: string[], expected: RegExp): Promise<boolean> {
  for (let i = 0; i < 8; i++) if (!expected.test(await servedBy(url, headers))) return false;
  return true;
}

/** Waits until the echo Deployment's pods are all new since `before` (its rollout has ended) and ready. */
async function rolledOut(before: readonly string[]): Promise<ClusterPod[]> {
  let pods: ClusterPod[] = [];
  await until('the echo rollout', 120, async () => {
    const all = (await readCluster(config)).pods.filter((p) => p.app === 'echo' && p.namespace === 'default');
    pods = all.filter((p) => !p.terminating);
    return all.length === pods.length && pods.length === 2 && pods.every((p) => p.ready && !before.includes(p.name));
  });
  return pods;
}

interface HttpFigures {
  rps: number;
  p50Us: number;
  p99Us: number;
}

/** The same path under load (-c50) and one request at a time (-c1). */
interface Paired {
  loaded: HttpFigures;
  single: HttpFigures;
}

const TO_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000 };

function latencyUs(out: string, percent: number): number {
  const match = new RegExp(`^\\s*${percent}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
  if (match === null) throw new Error(`no ${percent}% latency in wrk's output: ${out}`);
  return Number(match[1]) * TO_US[match[2]!]!;
}

/**
 * wrk over HTTP/1.1 keep-alive (-c50 -t2: under load; -c1 -t1: one request at a time, the latency a request adds):
 * requests per second and the p50/p99 latencies of its distribution.
 */
async function wrk(url: string, headers: string[], connections: 50 | 1): Promise<HttpFigures> {
  const load = connections === 50 ? ['-c50', '-t2'] : ['-c1', '-t1'];
  const command = ['wrk', ...load, `-d${SECONDS}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  let r = await inPod(command, (SECONDS + 20) * 1000);
  if (r.code === -1) {
    // wrk has been seen not to exit (2 runs in 3, the first -c50 after a rollout); one retry keeps the figures
    // honest (a second hang still fails the bench), and the log says it happened.
    console.error(`kubetun intercept bench: wrk -c${connections} ${url} did not exit within ${SECONDS + 20} s; retrying once`);
    r = await inPod(command, (SECONDS + 20) * 1000);
  }
  const out = check(`wrk ${url}`, r);
  if (/Non-2xx or 3xx responses/.test(out)) throw new Error(`wrk ${url} got error answers: ${out}`);
  const socketErrors = /^\s*Socket errors: .*$/m.exec(out);
  if (socketErrors !== null) console.error(`kubetun intercept bench: wrk -c${connections} ${url}: ${socketErrors[0].trim()}`);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (rps === null) throw new Error(`no Requests/sec in wrk's output: ${out}`);
  return { rps: Number(rps[1]), p50Us: latencyUs(out, 50), p99Us: latencyUs(out, 99) };
}

/** One iperf3 flow from the client pod, in Gbit/s; a few tries, as the server runs one test at a time. */
async function iperf(host: string, port: number, reverse: boolean): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const r = await inPod(['iperf3', '-c', host, '-p', String(port), '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])], (SECONDS + 60) * 1000);
    let result: { end?: { sum_received?: { bits_per_second: number } }; error?: string } = {};
    try {
      result = JSON.parse(r.stdout) as typeof result;
    } catch {
      result = { error: (r.stderr + r.stdout).slice(0, 300) };
    }
    if (result.end?.sum_received !== undefined) return result.end.sum_received.bits_per_second / 1e9;
    if (attempt === 5) throw new Error(`iperf3 to ${host}:${port} measured nothing: ${result.error ?? ''}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * Seconds from the start of `kubetun intercept` to the first request from the client pod that the laptop answers,
 * polled every ~100 ms (each poll bounded; the poller gives up by itself after a few minutes).
 */
async function timeToLaptop(workload: string, namespace: string, url: string): Promise<number> {
  const start = performance.now();
  const intercept = kubetun('intercept', workload, '-n', namespace, '--port', String(LAPTOP_HTTP));
  const poll = `for i in $(seq 1500); do curl -s -m 1 -o /dev/null -D - ${url} | grep -qi '^x-served-by: *laptop' && exit 0; sleep 0.1; done; exit 1`;
  const polled = inPod(['sh', '-c', poll], 300_000).then((r) => {
    check(`polling ${url} for the laptop's answer`, r);
    return (performance.now() - start) / 1000;
  });
  const [seconds] = await Promise.all([polled, intercept]);
  return seconds;
}

async function measure(): Promise<Result[]> {
  await kubetun('install');
  await kubetun('connect');
  const redis = podsOf((await readCluster(config)).pods, 'redis').find((p) => p.ready);
  if (redis === undefined) throw new Error('no ready redis pod to run the in-cluster client in');
  clientNetns = netnsOf(redis);
  await until('the laptop server listens', 20, async () => (await ws(['curl', '-sf', '-m', '2', `http://127.0.0.1:${LAPTOP_HTTP}/`])).code === 0);

  // With a rollout: shop/orders has never been intercepted (a numeric targetPort: the init container's redirect).
  const rolloutS = await timeToLaptop('orders', 'shop', 'http://orders.shop/');
  await kubetun('leave', 'orders', '-n', 'shop');

  // A personal intercept of echo; once its rollout is over, the direct path is an echo pod's own port (the app).
  const before = podsOf((await readCluster(config)).pods, 'echo').map((p) => p.name);
  await kubetun('intercept', 'echo', '--port', String(LAPTOP_HTTP), '--http-header', MATCH.replace(': ', '='));
  const pods = await rolledOut(before);
  await until('the personal intercept routes', 60, async () => (await routed(ECHO_URL, [MATCH], /^laptop$/)) && routed(ECHO_URL, [], /^echo-/));
  const both = async (url: string, headers: string[] = []): Promise<Paired> => ({ loaded: await wrk(url, headers, 50), single: await wrk(url, headers, 1) });
  const direct = await both(`http://${pods[0]!.ipv4}:80/`);
  const noMatch = await both(ECHO_URL);
  const match = await both(ECHO_URL, [MATCH]);
  await kubetun('leave', 'echo');

  // Without a rollout: echo's agents stay after the leave; this global intercept is then measured too.
  const noRolloutS = await timeToLaptop('echo', 'default', ECHO_URL);
  await until('the global intercept routes', 30, () => routed(ECHO_URL, [], /^laptop$/));
  const global = await both(ECHO_URL);
  await kubetun('leave', 'echo');

  // One flow through a global intercept to the laptop's iperf3 (its control and data connections both intercepted).
  await kubetun('intercept', 'echo', '--port', String(LAPTOP_IPERF));
  const iperfPod = podsOf((await readCluster(config)).pods, 'iperf').find((p) => p.ready);
  if (iperfPod === undefined) throw new Error('no ready iperf pod');
  const tcp = {
    up: await iperf('echo.default', 80, false),
    down: await iperf('echo.default', 80, true),
    directUp: await iperf(iperfPod.ipv4, 5201, false),
    directDown: await iperf(iperfPod.ipv4, 5201, true),
  };
  await kubetun('leave', 'echo');

  const http = (path: string, { loaded, single }: Paired): Result[] => [
    { id: `intercept.http.${path}.rps`, unit: 'per s', kubetun: loaded.rps, direct: direct.loaded.rps },
    { id: `intercept.http.${path}.p50`, unit: 'us', kubetun: loaded.p50Us, direct: direct.loaded.p50Us },
    { id: `intercept.http.${path}.p99`, unit: 'us', kubetun: loaded.p99Us, direct: direct.loaded.p99Us },
    { id: `intercept.http.${path}.c1.p50`, unit: 'us', kubetun: single.p50Us, direct: direct.single.p50Us },
  ];
  return [
    ...http('personal_nomatch', noMatch),
    ...http('personal_match', match),
    ...http('global', global),
    { id: 'intercept.http.personal_nomatch.p50_overhead', unit: 'us', kubetun: noMatch.loaded.p50Us - direct.loaded.p50Us, direct: null },
    { id: 'intercept.http.personal_nomatch.c1.p50_overhead', unit: 'us', kubetun: noMatch.single.p50Us - direct.single.p50Us, direct: null },
    { id: 'intercept.tcp.1flow.up', unit: 'Gbit/s', kubetun: tcp.up, direct: tcp.directUp },
    { id: 'intercept.tcp.1flow.down', unit: 'Gbit/s', kubetun: tcp.down, direct: tcp.directDown },
    { id: 'intercept.ready.rollout', unit: 's', kubetun: rolloutS, direct: null },
    { id: 'intercept.ready.no_rollout', unit: 's', kubetun: noRolloutS, direct: null },
  ];
}

async function main(): Promise<void> {
  const laptops: ChildProcess[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanUp = (): Promise<void> =>
    (cleaned ??= (async () => {
      for (const child of laptops) child.kill('SIGKILL');
      if (laptops.length > 0) await kubetun('quit').catch(() => undefined);
      await sandboxDown(NAME);
    })());
  // An interrupted bench removes its sandbox too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
  let results: Result[];
  try {
    await sandboxUp(NAME);
    laptops.push(laptop(['node', ECHO_SERVER, '--pod', 'laptop', '--port', String(LAPTOP_HTTP)]), laptop(['iperf3', '-s', '-p', String(LAPTOP_IPERF)]));
    results = await measure();
  } finally {
    await cleanUp();
  }
  printResults(results);
  const overhead = (id: string): string => `${results.find((r) => r.id === id)!.kubetun.toFixed(0)} us`;
  const [rollout, noRollout] = results.filter((r) => r.id.startsWith('intercept.ready.')).map((r) => r.kubetun.toFixed(2));
  const [loaded, single] = ['', 'c1.'].map((c) => overhead(`intercept.http.personal_nomatch.${c}p50_overhead`));
  console.log(`personal non-matching p50 overhead vs direct: ${loaded} at -c50, ${single} at -c1 (target <= ${P50_OVERHEAD_TARGET_US} us)`);
  console.log(`intercept to the laptop's first answer: ${rollout} s with a rollout, ${noRollout} s without (target <= ${READY_TARGET_S} s)`);
  mergeResults('intercept.', results);
}

main().catch((error: Error) => {
  console.error(`kubetun intercept bench: ${error.message}`);
  process.exit(1);
});
