// Intercepts against the sandbox cluster, for real: kubetun install registers the webhook with the real API server,
// which calls the manager through its Service; the sandbox kubelet runs the injected agent and init container; real
// clients (curl over HTTP/1.1 and HTTP/2) run in another pod's network namespace, and the laptop's servers run in
// the workstation namespace, where kubetun's daemons dial them.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { podsOf, readCluster, sandboxApi, sandboxConfig, sandboxDown, sandboxUp, workstationCommand, type ClusterPod } from '../../src/sandbox/index.js';
import { podNetnsName } from '../../src/sandbox/kubelet/pod-env.js';
import { userRunDirPath } from '../../src/local-paths.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ECHO_SERVER = fileURLToPath(new URL('../../src/sandbox/workloads/echo-server.js', import.meta.url));
const SECOND_CLIENT = fileURLToPath(new URL('./intercept-client.js', import.meta.url));
const NAME = `kti${process.pid % 1000}`;
const config = sandboxConfig(NAME);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A command in the workstation namespace (the laptop). */
function ws(command: string[], timeoutMs = 60_000): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  return run(file, args, { ...process.env, ...env }, timeoutMs);
}

// `node --`: Node 20 reads a later --env-file as its own option (and exits when the file is not there yet).
const kubetun = (...args: string[]): Promise<Run> => ws(['node', '--', KUBETUN, ...args], 120_000);

/** A long-running process in the workstation, ended by PID after the test. */
function wsDaemon(command: string[]): ChildProcess {
  const { file, args, env } = workstationCommand(config, command);
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  return child;
}

/** The PIDs of this sandbox's kubetun daemons (the root daemon names its sandbox in its arguments, the user daemon in its environment). */
function daemonsOfThisSandbox(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0] !== process.execPath || argv[1] !== KUBETUN || !['user-daemon', 'root-daemon'].includes(argv[2] ?? '')) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (argv.join(' ').includes(`--sandbox ${NAME}`) || environ.includes(`KUBETUN_SANDBOX=${NAME}`)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

const netnsOf = (pod: ClusterPod): string => podNetnsName(config.podNetnsPrefix, { metadata: { name: pod.name, namespace: pod.namespace, uid: '' } });

/** A process in the network namespace of a pod that is not intercepted: the in-cluster client. */
async function inClient(command: string[], timeoutMs = 20_000): Promise<Run> {
  const pods = podsOf((await readCluster(config)).pods, 'redis').filter((p) => p.ready);
  assert.ok(pods.length > 0, 'no ready redis pod to run the in-cluster client in');
  return run('ip', ['netns', 'exec', netnsOf(pods[0]!), ...command], process.env, timeoutMs);
}

/** Who answered `curl URL` from inside the cluster: the pod name the echo server reports. */
async function servedBy(url: string, headers: string[] = [], extra: string[] = []): Promise<string> {
  const r = await inClient(['curl', '-sS', '-m', '10', '-g', '-o', '/dev/null', '-D', '-', ...headers.flatMap((h) => ['-H', h]), ...extra, url]);
  assert.equal(r.code, 0, `curl ${url}: ${r.stderr}`);
  const header = /^x-served-by: *(\S+)/im.exec(r.stdout);
  assert.ok(header, `no x-served-by in ${r.stdout}`);
  return header[1]!;
}

async function until(what: string, seconds: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${what}: not within ${seconds} s`);
}

const json = <T>(r: Run): T => {
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return JSON.parse(r.stdout) as T;
};

/** Ends `workload`'s intercept after the test whatever happened, so that one failure does not fail the next tests. */
function leaveAfter(t: TestContext, workload: string): void {
  t.after(() => kubetun('leave', workload));
}

/** `n` requests in a row answered by `who`. */
async function allServedBy(url: string, who: string, n = 4): Promise<boolean> {
  for (let i = 0; i < n; i++) if ((await servedBy(url)) !== who) return false;
  return true;
}

interface InterceptJson {
  id: string;
  state: string;
  requests: string;
  spec: { workload: string; mode: string };
}

describe('intercepts in the sandbox cluster', { skip: controlPlaneSkipReason() ?? false }, () => {
  const laptops: ChildProcess[] = [];

  before(async () => {
    await sandboxUp(NAME);
    const installed = await kubetun('install');
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    const connected = await kubetun('connect');
    assert.equal(connected.code, 0, connected.stderr);
    // The laptop's servers: the echo server itself, named "laptop" (HTTP/1.1, h2c, WebSocket), on 8080 and 8081.
    for (const [pod, port] of [['laptop', 8080], ['laptop2', 8081]] as const) laptops.push(wsDaemon(['node', ECHO_SERVER, '--pod', pod, '--port', String(port)]));
    await until('the laptop servers listen', 10, async () => (await ws(['curl', '-sS', '-m', '2', 'http://127.0.0.1:8081/'])).code === 0);
  });

  after(async () => {
    for (const child of laptops) child.kill('SIGKILL');
    await kubetun('quit');
    await sandboxDown(NAME);
  });

  test('install mutates nothing that is not intercepted: the pods of shop/orders run without an agent', async () => {
    const [answer] = await sandboxApi(config, [{ method: 'GET', path: '/api/v1/namespaces/shop/pods' }]);
    const pods = (JSON.parse(answer!.body) as { items: { spec: { containers: { name: string }[]; initContainers?: unknown[] } }[] }).items;
    assert.ok(pods.length > 0);
    for (const pod of pods) {
      assert.deepEqual(pod.spec.containers.map((c) => c.name), ['orders']);
      assert.equal(pod.spec.initContainers, undefined);
    }
  });

  test('kubetun list shows echo as interceptable by its named port, hello by the init container', async () => {
    const list = json<{ workloads: { name: string; interceptable: boolean; ports: { takeover: string }[] }[] }>(await kubetun('list', '--output', 'json'));
    const echo = list.workloads.find((w) => w.name === 'echo');
    const hello = list.workloads.find((w) => w.name === 'hello');
    assert.ok(echo?.interceptable, JSON.stringify(list));
    assert.equal(echo.ports[0]?.takeover, 'named-port');
    assert.equal(hello?.ports[0]?.takeover, 'init-container');
  });

  test('a global intercept: curl http://echo.default from a pod is answered by the laptop; leave puts it back', async (t) => {
    leaveAfter(t, 'echo');
    const info = json<InterceptJson>(await kubetun('intercept', 'echo', '--port', '8080', '--output', 'json'));
    assert.equal(info.state, 'active');
    // Active means every echo pod runs the agent; kube-proxy may still be catching up with the rollout.
    await until('echo answers from the laptop', 30, () => allServedBy('http://echo.default/', 'laptop'));
    assert.equal(await servedBy('http://echo.default/', [], ['--http2-prior-knowledge']), 'laptop');
    const left = await kubetun('leave', 'echo');
    assert.equal(left.code, 0, left.stderr);
    await until('echo answers from its pods again', 10, async () => (await servedBy('http://echo.default/')).startsWith('echo-'));
  });

  test('a personal intercept: only x-dev=alice requests reach the laptop, on one kept-alive connection mixing both', async (t) => {
    leaveAfter(t, 'echo');
    const info = json<InterceptJson>(await kubetun('intercept', 'echo', '--port', '8080', '--http-header', 'x-dev=alice', '--output', 'json'));
    assert.equal(info.state, 'active');
    const r = await inClient([
      'curl', '-sS', '-v', '-m', '10',
      '-H', 'x-dev: alice', 'http://echo.default/1',
      '--next', 'http://echo.default/2',
      '--next', '-H', 'x-dev: alice', 'http://echo.default/3',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const by = [...r.stderr.matchAll(/^< x-served-by: *(\S+)/gim)].map((m) => m[1]!);
    assert.equal(by.length, 3, r.stderr);
    assert.equal(by[0], 'laptop');
    assert.match(by[1]!, /^echo-/);
    assert.equal(by[2], 'laptop');
    assert.match(r.stderr, /Re-using existing connection/i, 'curl opened a second connection');
    assert.equal(await servedBy('http://echo.default/', ['x-dev: alice'], ['--http2-prior-knowledge']), 'laptop');
    assert.match(await servedBy('http://echo.default/', ['x-dev: bob'], ['--http2-prior-knowledge']), /^echo-/);
    assert.equal((await kubetun('leave', 'echo')).code, 0);
  });

  test('wiretap: the pod still answers and a copy of each request reaches the laptop', async (t) => {
    leaveAfter(t, 'echo');
    const info = json<InterceptJson>(await kubetun('wiretap', 'echo', '--port', '8081', '--output', 'json'));
    assert.equal(info.state, 'active');
    for (let i = 0; i < 3; i++) assert.match(await servedBy(`http://echo.default/tap${i}`), /^echo-/);
    const status = json<{ intercepts?: InterceptJson[] }>(await kubetun('status', '--output', 'json'));
    await until('the wiretap counted 3 copies', 10, async () => {
      const s = json<{ intercepts?: InterceptJson[] }>(await kubetun('status', '--output', 'json'));
      return Number(s.intercepts?.find((i) => i.spec.workload === 'echo')?.requests ?? 0) >= 3;
    });
    assert.ok(status.intercepts !== undefined);
    assert.equal((await kubetun('leave', 'echo')).code, 0);
  });

  test('a numeric targetPort is taken by the init container: a global intercept of hello', async (t) => {
    leaveAfter(t, 'hello');
    const info = json<InterceptJson>(await kubetun('intercept', 'hello', '--port', '8080', '--output', 'json'));
    assert.equal(info.state, 'active');
    await until('hello answers from the laptop', 30, () => allServedBy('http://hello.default/', 'laptop'));
    assert.equal((await kubetun('leave', 'hello')).code, 0);
    await until('hello answers from its pod again', 10, async () => (await servedBy('http://hello.default/')).startsWith('hello-'));
  });

  test("the env file holds the ConfigMap's and the Secret's values; -- env prints them", async (t) => {
    leaveAfter(t, 'echo');
    const dir = `${config.stateDir}/intercept-env`;
    rmSync(dir, { recursive: true, force: true });
    await ws(['mkdir', '-p', dir]);
    const r = await kubetun('intercept', 'echo', '--port', '8080', '--env-file', `${dir}/echo.env`, '--env-json', `${dir}/echo.json`, '--', 'env');
    assert.equal(r.code, 0, r.stderr);
    for (const line of ['GREETING=hello', 'ECHO_COLOR=blue', 'ECHO_TOKEN=s3cret-token', 'CFG_color=blue']) assert.match(r.stdout, new RegExp(`^${line}$`, 'm'));
    const env = JSON.parse(readFileSync(`${dir}/echo.json`, 'utf8')) as Record<string, string>;
    assert.equal(env.ECHO_TOKEN, 's3cret-token');
    assert.match(readFileSync(`${dir}/echo.env`, 'utf8'), /^ECHO_COLOR=blue$/m);
    assert.equal(statSync(`${dir}/echo.env`).mode & 0o777, 0o600);
    const status = json<{ intercepts?: InterceptJson[] }>(await kubetun('status', '--output', 'json'));
    assert.deepEqual(status.intercepts ?? [], [], 'the intercept outlived its command');
  });

  test("the laptop's port not listening: the cluster client gets a 502 from a personal intercept, a reset from a global one — never a hang", async (t) => {
    leaveAfter(t, 'echo');
    assert.equal((await kubetun('intercept', 'echo', '--port', '8099', '--http-header', 'x-dev=carol')).code, 0);
    const r = await inClient(['curl', '-sS', '-m', '15', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'x-dev: carol', 'http://echo.default/']);
    assert.equal(r.stdout, '502', r.stderr);
    assert.equal((await kubetun('leave', 'echo')).code, 0);
    assert.equal((await kubetun('intercept', 'echo', '--port', '8099')).code, 0);
    const g = await inClient(['curl', '-sS', '-m', '15', 'http://echo.default/']);
    assert.notEqual(g.code, 0);
    assert.notEqual(g.code, 28, 'curl timed out: a hang');
    assert.equal((await kubetun('leave', 'echo')).code, 0);
  });

  test('replace: the app container stops, the laptop answers every request; leave brings the app back', async (t) => {
    leaveAfter(t, 'echo');
    const info = json<InterceptJson>(await kubetun('replace', 'echo', '--port', '8080', '--output', 'json'));
    assert.equal(info.state, 'active');
    const [answer] = await sandboxApi(config, [{ method: 'GET', path: '/api/v1/namespaces/default/pods?labelSelector=app%3Decho' }]);
    const pods = (JSON.parse(answer!.body) as { items: { metadata: { deletionTimestamp?: string }; spec: { containers: { name: string }[] } }[] }).items.filter((p) => p.metadata.deletionTimestamp === undefined);
    assert.ok(pods.length > 0 && pods.every((p) => !p.spec.containers.some((c) => c.name === 'echo')), 'a pod still runs the app container');
    await until('echo answers from the laptop', 30, () => allServedBy('http://echo.default/', 'laptop'));
    assert.equal((await kubetun('leave', 'echo')).code, 0);
    await until('echo answers from its app container again', 90, async () => (await servedBy('http://echo.default/')).startsWith('echo-'));
  });
  test('two clients hold personal intercepts of echo at once, each gets its own requests; an overlapping third is refused', async (t) => {
    leaveAfter(t, 'echo');
    assert.equal((await kubetun('intercept', 'echo', '--port', '8080', '--http-header', 'x-dev=alice')).code, 0);
    const forward = `unix:${userRunDirPath({ KUBETUN_SANDBOX: NAME }, 0)}/manager-forward.sock`;
    const client = (header: string): string[] => ['node', SECOND_CLIENT, forward, 'echo', '8081', header];
    const third = await ws(client('x-dev=alice'));
    assert.notEqual(third.code, 0);
    assert.match(third.stderr, /intercepted by root@\S+ \(personal, x-dev=alice\)/);
    const { file, args, env } = workstationCommand(config, client('x-dev=bob'));
    const second = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        second.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        second.once('exit', (code) => reject(new Error(`the second client exited with ${code}`)));
      });
      assert.equal((JSON.parse(line) as { state: string }).state, 'active');
      assert.equal(await servedBy('http://echo.default/', ['x-dev: alice']), 'laptop');
      assert.equal(await servedBy('http://echo.default/', ['x-dev: bob']), 'laptop2');
      assert.match(await servedBy('http://echo.default/', ['x-dev: carol']), /^echo-/);
      const list = json<{ workloads: { name: string; intercepts: { client: string }[] }[] }>(await kubetun('list', '--output', 'json'));
      assert.equal(list.workloads.find((w) => w.name === 'echo')?.intercepts.length, 2);
    } finally {
      // SIGTERM: it departs, ending its intercept at once (a kill -9 would hold it for the session TTL).
      second.kill('SIGTERM');
      await new Promise((resolve) => second.once('exit', resolve));
    }
    assert.equal((await kubetun('leave', 'echo')).code, 0);
  });

  test('a pod restart: the intercept holds for the new pod', async (t) => {
    leaveAfter(t, 'echo');
    assert.equal((await kubetun('intercept', 'echo', '--port', '8080')).code, 0);
    const victim = podsOf((await readCluster(config)).pods, 'echo').find((p) => p.ready);
    assert.ok(victim);
    const [deleted] = await sandboxApi(config, [{ method: 'DELETE', path: `/api/v1/namespaces/default/pods/${victim.name}` }]);
    assert.equal(deleted?.status, 200, deleted?.body);
    await until('a new echo pod is ready', 60, async () => podsOf((await readCluster(config)).pods, 'echo').filter((p) => p.ready && p.name !== victim.name).length >= 2);
    await until('every echo pod answers from the laptop', 30, () => allServedBy('http://echo.default/', 'laptop', 6));
  });

  test('the manager pod deleted mid-intercept: every request is answered (pod or laptop), and the intercept comes back', async (t) => {
    leaveAfter(t, 'echo');
    assert.equal((await kubetun('intercept', 'echo', '--port', '8080')).code, 0);
    await until('echo answers from the laptop', 30, () => allServedBy('http://echo.default/', 'laptop'));
    const manager = podsOf((await readCluster(config)).pods, 'traffic-manager', config.manager.namespace).find((p) => p.ready);
    assert.ok(manager);
    const [deleted] = await sandboxApi(config, [{ method: 'DELETE', path: `/api/v1/namespaces/${config.manager.namespace}/pods/${manager.name}` }]);
    assert.equal(deleted?.status, 200, deleted?.body);
    const end = Date.now() + 120_000;
    let laptopAgain = 0;
    while (Date.now() < end && laptopAgain < 4) {
      const r = await inClient(['curl', '-sS', '-m', '10', '-o', '/dev/null', '-D', '-', 'http://echo.default/']);
      assert.notEqual(r.code, 28, `a request hung while the manager restarted: ${r.stderr}`);
      laptopAgain = /^x-served-by: *laptop/im.test(r.stdout) ? laptopAgain + 1 : 0;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(laptopAgain, 4, 'the intercept did not come back within 120 s of the manager restart');
    const status = json<{ intercepts?: InterceptJson[] }>(await kubetun('status', '--output', 'json'));
    assert.equal(status.intercepts?.find((i) => i.spec.workload === 'echo')?.state, 'active');
  });

  test("kill -9 of the intercepting client's daemons: the manager ends the intercept within its session TTL", async () => {
    assert.equal((await kubetun('intercept', 'echo', '--port', '8080')).code, 0);
    await until('echo answers from the laptop', 30, () => allServedBy('http://echo.default/', 'laptop'));
    const pids = daemonsOfThisSandbox();
    assert.equal(pids.length, 2, 'the user and root daemons of this sandbox');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    // The session TTL is 60 s; the manager sweeps every quarter of it.
    await until('echo answers from its pods again', 90, async () => (await servedBy('http://echo.default/')).startsWith('echo-'));
    const connected = await kubetun('connect');
    assert.equal(connected.code, 0, connected.stderr);
  });
});
