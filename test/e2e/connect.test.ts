// kubetun connect against the sandbox cluster: real daemons, the real traffic manager in its pod, real clients
// (curl, dig, redis-cli, iperf3) in the workstation namespace, which reaches the cluster only through kubetun.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { sandboxConfig, sandboxDown, sandboxStatus, sandboxUp, workstationCommand, writeClusterCidrs } from '../../src/sandbox/index.js';

const ROOT = process.getuid?.() === 0;
const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NAME = `ktc${process.pid % 1000}`;
const config = sandboxConfig(NAME);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command in the sandbox's workstation namespace, as `kubetun sandbox exec` would. */
function ws(command: string[], timeoutMs = 30_000): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  const start = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr, ms: performance.now() - start });
    });
  });
}

const kubetun = (...args: string[]): Promise<Run> => ws(['node', KUBETUN, ...args]);

async function noKubetunLeft(): Promise<void> {
  const routes = await ws(['ip', '-j', 'route', 'show', 'table', 'all']);
  assert.doesNotMatch(routes.stdout, /"kt0"/, 'a route through kt0 is left');
  const link = await ws(['ip', 'link', 'show', 'kt0']);
  assert.notEqual(link.code, 0, 'the TUN device kt0 is left');
  const resolv = await ws(['cat', '/etc/resolv.conf']);
  assert.doesNotMatch(resolv.stdout, /kubetun|198\.18\.255\.53/, 'resolv.conf still points at kubetun');
}

describe('kubetun connect to the sandbox cluster', { skip: !ROOT && 'needs root' }, () => {
  before(async () => {
    await sandboxUp(NAME);
    const connected = await kubetun('connect');
    assert.equal(connected.code, 0, connected.stderr);
  });

  after(async () => {
    await kubetun('quit');
    await sandboxDown(NAME);
  });

  for (const url of ['http://echo', 'http://echo.default', 'http://echo.default.svc.cluster.local', 'http://10.96.0.20', 'http://10.244.0.11', 'http://[fd10:96::14]', 'http://[fd10:244::12]', 'http://orders.shop']) {
    test(`curl ${url}`, async () => {
      const r = await ws(['curl', '-sS', '-m', '5', url]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pod: (echo|orders)-/m);
    });
  }

  test('the echo service balances across both replicas', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 30 && pods.size < 2; i++) {
      const r = await ws(['curl', '-sS', '-m', '5', 'http://echo.default']);
      pods.add(/^pod: (\S+)/m.exec(r.stdout)?.[1] ?? '');
    }
    assert.equal(pods.size, 2, [...pods].join(','));
  });

  test('dig A, AAAA and SRV over UDP and TCP', async () => {
    const a = await ws(['dig', '+short', 'echo.default.svc.cluster.local']);
    assert.equal(a.stdout.trim(), '10.96.0.20');
    const aaaa = await ws(['dig', '+short', '+tcp', 'AAAA', 'echo.default.svc.cluster.local']);
    assert.equal(aaaa.stdout.trim(), 'fd10:96::14');
    const srv = await ws(['dig', '+short', 'SRV', '_http._tcp.echo.default.svc.cluster.local']);
    assert.match(srv.stdout, /80 echo\.default\.svc\.cluster\.local\./);
    const short = await ws(['dig', '+short', '+search', 'redis']);
    assert.equal(short.stdout.trim(), '10.96.0.21');
  });

  test('a non-cluster name still resolves through the original upstream', async () => {
    const r = await ws(['dig', '+short', 'www.upstream.test']);
    assert.equal(r.stdout.trim(), '198.18.0.1');
  });

  test('an unknown cluster name is NXDOMAIN, fast', async () => {
    const r = await ws(['dig', 'nope.default.svc.cluster.local']);
    assert.match(r.stdout, /status: NXDOMAIN/);
    assert.ok(r.ms < 1500, `took ${r.ms} ms`);
  });

  test('redis-cli SET and GET through the service name', async () => {
    assert.equal((await ws(['redis-cli', '-h', 'redis', 'SET', 'kubetun', 'works'])).stdout.trim(), 'OK');
    assert.equal((await ws(['redis-cli', '-h', 'redis.default', 'GET', 'kubetun'])).stdout.trim(), 'works');
  });

  test('iperf3 TCP both ways and UDP', async () => {
    for (const extra of [[], ['-R'], ['-u', '-b', '50M']]) {
      const r = await ws(['iperf3', '-c', 'iperf', '-t', '1', '-J', ...extra], 30_000);
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(0, 500));
      const result = JSON.parse(r.stdout) as { end: { sum_received?: { bytes: number }; sum?: { bytes: number } } };
      assert.ok((result.end.sum_received?.bytes ?? result.end.sum?.bytes ?? 0) > 0);
    }
  });

  test('a closed port is "connection refused" at once', async () => {
    const r = await ws(['curl', '-sS', '-m', '5', 'http://10.244.0.11:81']);
    assert.equal(r.code, 7, r.stderr);
    assert.ok(r.ms < 1000, `took ${r.ms} ms`);
  });

  test('version names the client, the user daemon and the manager', async () => {
    const r = await kubetun('version');
    assert.match(r.stdout, /Client: +kubetun \d+\.\d+\.\d+/);
    assert.match(r.stdout, /User daemon: +kubetun \d+/);
    assert.match(r.stdout, /Traffic manager: +\d+\.\d+\.\d+/);
  });

  test('status shows the session, routes, DNS and counters; --output json too', async () => {
    const text = await kubetun('status');
    assert.match(text.stdout, /Status: +connected/);
    assert.match(text.stdout, /Routes: +.*10\.96\.0\.0\/12/);
    const json = JSON.parse((await kubetun('status', '--output', 'json')).stdout) as { state: string; network: { routes: string[] } };
    assert.equal(json.state, 'connected');
    assert.ok(json.network.routes.includes('10.244.0.0/16'));
  });

  test('a change of the cluster\'s CIDRs while connected is routed within seconds, and withdrawn again', async () => {
    const routed = async (cidr: string): Promise<boolean> => (await ws(['ip', 'route', 'show', cidr])).stdout.includes('kt0');
    const waitFor = async (cidr: string, present: boolean): Promise<void> => {
      for (let i = 0; i < 50 && (await routed(cidr)) !== present; i++) await new Promise((r) => setTimeout(r, 200));
      assert.equal(await routed(cidr), present, `${cidr} ${present ? 'not routed' : 'still routed'} after 10 s`);
    };
    writeClusterCidrs(config, { podCidrs: [...config.podCidrs, '10.245.0.0/16'], serviceCidrs: config.serviceCidrs });
    try {
      await waitFor('10.245.0.0/16', true);
    } finally {
      writeClusterCidrs(config, { podCidrs: config.podCidrs, serviceCidrs: config.serviceCidrs });
    }
    await waitFor('10.245.0.0/16', false);
    assert.ok(await routed('10.244.0.0/16'));
  });

  test('quit, then kill -9 of both daemons, leave no route, device or DNS change behind', async () => {
    assert.equal((await kubetun('quit')).code, 0);
    await noKubetunLeft();
    assert.equal((await kubetun('connect')).code, 0);
    await ws(['pkill', '-9', '-f', `${KUBETUN} (root|user)-daemon`]);
    await new Promise((r) => setTimeout(r, 300));
    // The device and its routes die with the process; resolv.conf is repaired by the next start.
    const again = await kubetun('connect');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://echo'])).code, 0);
    assert.equal((await kubetun('quit')).code, 0);
    await noKubetunLeft();
  });

  test('SIGTERM to the root daemon restores everything; connect brings the network back', async () => {
    assert.equal((await kubetun('connect')).code, 0);
    const pids = (await ws(['ip', 'netns', 'pids', config.namespaces.workstation])).stdout.split('\n').filter(Boolean);
    let rootd = 0;
    for (const pid of pids) if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('root-daemon')) rootd = Number(pid);
    assert.ok(rootd > 0, 'no root daemon found');
    process.kill(rootd, 'SIGTERM');
    for (let i = 0; i < 50 && (await readFile(`/proc/${rootd}/cmdline`).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    await noKubetunLeft();
    const again = await kubetun('connect');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await ws(['curl', '-sS', '-m', '5', 'http://echo'])).code, 0);
  });

  test('when the traffic manager restarts, the session comes back by itself', async () => {
    const manager = (await sandboxStatus(NAME)).pods.find((p) => p.deployment === 'traffic-manager');
    assert.ok(manager?.pid, 'the manager is not running');
    process.kill(manager.pid, 'SIGKILL');
    await sandboxUp(NAME);
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = (await ws(['curl', '-sS', '-m', '2', 'http://echo.default'])).code === 0;
      if (!ok) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(ok, 'echo not reachable again within 20 s of the manager restart');
    assert.match((await kubetun('status')).stdout, /Status: +connected/);
  });

  test('a cluster subnet that overlaps a local route is refused with both named and the flags to use', async () => {
    await kubetun('quit');
    await ws(['ip', 'route', 'add', '10.96.0.0/16', 'dev', 'eth0']);
    try {
      const r = await kubetun('connect');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /10\.96\.0\.0\/12 overlaps the local route 10\.96\.0\.0\/16/);
      assert.match(r.stderr, /--allow-conflicting-subnets/);
      await noKubetunLeft();
      const allowed = await kubetun('connect', '--allow-conflicting-subnets', '10.96.0.0/12');
      assert.equal(allowed.code, 0, allowed.stderr);
    } finally {
      await kubetun('quit');
      await ws(['ip', 'route', 'del', '10.96.0.0/16', 'dev', 'eth0']);
    }
  });
});
