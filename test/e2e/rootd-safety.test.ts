// The real root daemon (`kubetun root-daemon`, as the launcher starts it) in a test network namespace whose
// /etc/resolv.conf is a bind mount of /etc/netns/NAME/resolv.conf, connected to a traffic manager test double: the
// real tunnel protocol (HTTP/2, the Manager API over gRPC) on a Unix socket, sending the cluster info the test
// chooses. No sandbox cluster is needed. The daemon must not apply hostile cluster info, must not route the
// tunnel's own addresses into the tunnel, and must put resolv.conf back after kill -9 and a reboot, or after an
// unexpected error of its own — but never over what the system wrote meanwhile.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { createClient, type Client } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { RootDaemon, type NetworkStatus } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { ClusterInfoSchema, Manager, type ClusterInfo } from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { daemonLog, managerForwardSocket, rootDaemonSocket, rootRunDir, rootStateDir } from '../../src/local-paths.js';
import { parseIp, parsePrefix, prefixContains } from '../../src/netstack/wire/ip-address.js';
import { unixRpcTransport } from '../../src/rpc/unix-socket-rpc.js';
import { TestNetns, requireRoot } from '../helpers/netns.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const DNS_ADDRESS = '198.18.255.53';
/** The host's resolver sits inside the cluster's service CIDR here: it must stay reachable outside the tunnel. */
const ORIGINAL = '# written by the DHCP client\nnameserver 10.96.0.10\nsearch corp.example\noptions edns0\n';
const API_SERVER = '10.96.0.1';
const GOOD: MessageInitShape<typeof ClusterInfoSchema> = {
  podCidrs: ['10.244.0.0/16'],
  serviceCidrs: ['10.96.0.0/12'],
  dns: { clusterDomain: 'cluster.local', searchPath: ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local'] },
};
const HOSTILE: [string, MessageInitShape<typeof ClusterInfoSchema>, RegExp][] = [
  ['half the internet', { ...GOOD, podCidrs: ['0.0.0.0/1'] }, /subnet 0\.0\.0\.0\/1 is wider than \/8/],
  ['a cluster domain of "."', { ...GOOD, dns: { clusterDomain: '.' } }, /cluster domain "\." has an empty label/],
  ['a search entry with a newline', { ...GOOD, dns: { ...GOOD.dns, searchPath: ['svc.cluster.local\nnameserver 6.6.6.6'] } }, /search entry "svc\.cluster\.local\\nnameserver 6\.6\.6\.6"/],
];

/** A traffic manager double: serves WatchClusterInfo on the real tunnel protocol, sending what `send` is given. */
class ManagerDouble extends EventEmitter<{ change: [] }> {
  private info: ClusterInfo = create(ClusterInfoSchema, GOOD);
  private revision = 1n;

  private constructor(
    private readonly server: http2.Http2Server,
    readonly url: string,
  ) {
    super();
    this.setMaxListeners(0);
  }

  static async listen(path: string, first: MessageInitShape<typeof ClusterInfoSchema>): Promise<ManagerDouble> {
    await rm(path, { force: true });
    const server = http2.createServer();
    const double = new ManagerDouble(server, `unix:${path}`);
    double.send(first);
    const watchClusterInfo = async function* (_request: unknown, context: { signal: AbortSignal }): AsyncGenerator<ClusterInfo> {
      let seen = 0n;
      while (!context.signal.aborted) {
        if (seen !== double.revision) {
          seen = double.revision;
          yield double.info;
          continue;
        }
        await new Promise<void>((resolve) => {
          double.once('change', resolve);
          context.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      }
    };
    server.on('request', connectNodeAdapter({ routes: (router) => router.service(Manager, { watchClusterInfo }) }));
    server.on('session', (session) => session.on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return double;
  }

  send(info: MessageInitShape<typeof ClusterInfoSchema>): void {
    this.revision += 1n;
    this.info = create(ClusterInfoSchema, { ...info, revision: this.revision });
    this.emit('change');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Bed {
  ns: TestNetns;
  resolvConf: string;
  /** The sandbox name the daemon is started for (the netns's): it picks the daemon's run and state dirs. */
  sandbox: string;
  runDir: string;
  stateDir: string;
}

/** A netns with its own resolv.conf (a bind mount, as in the sandbox); everything is removed after the test. */
async function testBed(t: TestContext): Promise<Bed> {
  const ns = await TestNetns.create('rootd');
  const etc = join('/etc/netns', ns.name);
  const bed: Bed = { ns, resolvConf: join(etc, 'resolv.conf'), sandbox: ns.name, runDir: rootRunDir(ns.name), stateDir: rootStateDir(ns.name) };
  // The shared parents (/etc/netns, /run/kubetun, /var/lib/kubetun) go too if this test made them.
  const madeParents = [etc, bed.runDir, bed.stateDir].map((d) => dirname(d)).filter((d) => !existsSync(d));
  t.after(async () => {
    await ns.destroy();
    for (const dir of [etc, bed.runDir, bed.stateDir]) await rm(dir, { recursive: true, force: true });
    for (const dir of madeParents) await rmdir(dir).catch(() => undefined);
  });
  await mkdir(etc, { recursive: true });
  await writeFile(bed.resolvConf, ORIGINAL);
  return bed;
}

interface Daemon {
  process: ChildProcess;
  root: Client<typeof RootDaemon>;
  exited: Promise<number | null>;
}

/** Starts `kubetun root-daemon` in the bed's netns (node's own options first) and waits until it answers. */
async function startRootDaemon(bed: Bed, nodeOptions: string[] = []): Promise<Daemon> {
  const socket = rootDaemonSocket(bed.runDir);
  await rm(socket, { force: true });
  const child = bed.ns.spawn('env', [
    '-u', 'KUBETUN_RUN_DIR', '-u', 'KUBETUN_RESOLV_CONF', '-u', 'KUBETUN_DNS_MODE', '-u', 'KUBETUN_TUN_NAME', '-u', 'SUDO_UID', '-u', 'SUDO_GID',
    process.execPath, ...nodeOptions, KUBETUN, 'root-daemon', '--sandbox', bed.sandbox,
  ]);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout?.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const root = createClient(RootDaemon, unixRpcTransport(socket));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) assert.fail(`the root daemon exited (${child.exitCode}): ${stderr}`);
    if (existsSync(socket) && (await root.status({}).then(() => true, () => false))) break;
    if (i > 100) assert.fail(`the root daemon did not answer within 10 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { process: child, root, exited };
}

async function kill9(daemon: Daemon): Promise<void> {
  daemon.process.kill('SIGKILL');
  await daemon.exited;
}

/** Routes kubetun added through kt0 other than the DNS server's own address (not the kernel's for any link). */
async function tunnelRoutes(ns: TestNetns): Promise<string[]> {
  const out = await ns.exec('ip', ['-j', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(out.stdout) as { dst: string; dev?: string; type?: string; protocol?: string }[];
  return routes.filter((r) => r.dev === 'kt0' && r.type === undefined && r.protocol !== 'kernel' && r.dst !== DNS_ADDRESS).map((r) => r.dst);
}

async function waitForStatus(root: Client<typeof RootDaemon>, done: (status: NetworkStatus) => boolean): Promise<NetworkStatus> {
  let status = await root.status({});
  for (let i = 0; i < 100 && !done(status); i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = await root.status({});
  }
  assert.ok(done(status), `status never reached the expected state: ${JSON.stringify(status, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  return status;
}

test('a manager sending hostile cluster info: nothing applied, status says why, the daemon keeps running; the tunnel\'s own addresses stay off the tunnel', async (t) => {
  if (!requireRoot(t)) return;
  const bed = await testBed(t);
  const daemon = await startRootDaemon(bed);
  const [, firstInfo, firstWhy] = HOSTILE[0]!;
  const manager = await ManagerDouble.listen(managerForwardSocket(bed.runDir), firstInfo);
  t.after(() => manager.close());

  const connected = await daemon.root.connect({ managerUrl: manager.url, sessionId: 'test-session', tunnelEndpoints: [API_SERVER] });
  assert.equal(connected.connected, true);
  assert.match(connected.clusterInfoError, firstWhy);
  for (const [what, info, why] of HOSTILE) {
    manager.send(info);
    const status = await waitForStatus(daemon.root, (s) => why.test(s.clusterInfoError));
    assert.deepEqual(status.routes, [], what);
    assert.deepEqual(await tunnelRoutes(bed.ns), [], `${what}: a route through kt0`);
    assert.equal(await readFile(bed.resolvConf, 'utf8'), ORIGINAL, `${what}: resolv.conf changed`);
    assert.equal(daemon.process.exitCode, null, `${what}: the root daemon exited`);
  }
  assert.match(await readFile(daemonLog('root-daemon', bed.runDir), 'utf8'), /search entry \\"svc\.cluster\.local\\\\nnameserver/);

  manager.send(GOOD);
  await waitForStatus(daemon.root, (s) => s.clusterInfoError === '' && s.routes.length > 0);
  // DNS is pointed at kubetun once all the routes are in place.
  let managed = await readFile(bed.resolvConf, 'utf8');
  for (let i = 0; i < 50 && !managed.includes(`nameserver ${DNS_ADDRESS}`); i++) {
    await new Promise((r) => setTimeout(r, 100));
    managed = await readFile(bed.resolvConf, 'utf8');
  }
  assert.match(managed, new RegExp(`nameserver ${DNS_ADDRESS.replaceAll('.', '\\.')}`));
  const good = await daemon.root.status({});
  // The API server and the upstream DNS server lie inside the service CIDR: both are carved out of it.
  for (const kept of [API_SERVER, '10.96.0.10']) {
    assert.ok(!good.routes.some((r) => prefixContains(parsePrefix(r), parseIp(kept))), `${kept} is routed into the tunnel`);
    assert.doesNotMatch((await bed.ns.exec('ip', ['route', 'get', kept])).stdout, /dev kt0/);
  }
  assert.match((await bed.ns.exec('ip', ['route', 'get', '10.96.0.2'])).stdout, /dev kt0/);

  // A later hostile update keeps the last good state.
  manager.send(HOSTILE[1]![1]);
  const kept = await waitForStatus(daemon.root, (s) => s.clusterInfoError !== '');
  assert.deepEqual(kept.routes, good.routes);
  assert.equal(await readFile(bed.resolvConf, 'utf8'), managed);

  await daemon.root.quit({});
  assert.equal(await daemon.exited, 0);
  assert.equal(await readFile(bed.resolvConf, 'utf8'), ORIGINAL);
});

test('kill -9, then a reboot (the run dir cleared): the next start restores resolv.conf; one rewritten by "DHCP" meanwhile is left as it is', async (t) => {
  if (!requireRoot(t)) return;
  const bed = await testBed(t);
  const connectAndKill = async (): Promise<Daemon> => {
    const daemon = await startRootDaemon(bed);
    const manager = await ManagerDouble.listen(managerForwardSocket(bed.runDir), GOOD);
    try {
      await daemon.root.connect({ managerUrl: manager.url, sessionId: 'test-session' });
      assert.match(await readFile(bed.resolvConf, 'utf8'), /managed by kubetun/);
      await kill9(daemon);
    } finally {
      await manager.close();
    }
    await rm(bed.runDir, { recursive: true, force: true });
    return daemon;
  };

  await connectAndKill();
  assert.match(await readFile(bed.resolvConf, 'utf8'), /managed by kubetun/, 'kill -9 left kubetun\'s resolv.conf (as expected)');
  let daemon = await startRootDaemon(bed);
  assert.equal(await readFile(bed.resolvConf, 'utf8'), ORIGINAL);
  await kill9(daemon);

  await connectAndKill();
  const dhcp = '# rewritten by the DHCP client\nnameserver 10.96.0.11\n';
  await writeFile(bed.resolvConf, dhcp);
  daemon = await startRootDaemon(bed);
  assert.equal(await readFile(bed.resolvConf, 'utf8'), dhcp);
  assert.equal(existsSync(join(bed.stateDir, 'resolv.conf.original')), false, 'the stale backup is left');
  assert.match(await readFile(daemonLog('root-daemon', bed.runDir), 'utf8'), /rewritten by another program/);
  await daemon.root.quit({});
  assert.equal(await daemon.exited, 0);
});

test('an unexpected error in the root daemon (injected by the test through a preloaded module) restores resolv.conf and exits non-zero', async (t) => {
  if (!requireRoot(t)) return;
  const bed = await testBed(t);
  const dir = await mkdtemp(join(tmpdir(), 'kt-crash-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const injected = { throw: "throw new Error('injected error')", reject: "void Promise.reject(new Error('injected rejection'))" };
  for (const [kind, statement] of Object.entries(injected)) {
    const inject = join(dir, `inject-${kind}.cjs`);
    await writeFile(inject, `process.on('SIGUSR2', () => setImmediate(() => { ${statement}; }));\n`);
    const daemon = await startRootDaemon(bed, ['--require', inject]);
    const manager = await ManagerDouble.listen(managerForwardSocket(bed.runDir), GOOD);
    try {
      await daemon.root.connect({ managerUrl: manager.url, sessionId: 'test-session' });
      assert.match(await readFile(bed.resolvConf, 'utf8'), /managed by kubetun/);
      daemon.process.kill('SIGUSR2');
      assert.equal(await daemon.exited, 1, `${kind}: exit code`);
    } finally {
      await manager.close();
    }
    assert.equal(await readFile(bed.resolvConf, 'utf8'), ORIGINAL, `${kind}: resolv.conf not restored`);
    assert.match(await readFile(daemonLog('root-daemon', bed.runDir), 'utf8'), /unexpected error; restoring DNS and routes/);
  }
});
