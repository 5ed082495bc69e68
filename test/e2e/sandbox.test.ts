// The sandbox cluster end to end: real servers in pod namespaces, ClusterIPs through nftables, cluster DNS,
// the upstream resolver of the workstation, repair, and a clean `down`. Runs as root, under its own sandbox name.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findBinary, runInNetns, type CommandResult } from '../../src/sandbox/host-commands.js';
import { existingNetns } from '../../src/sandbox/network.js';
import { isAlive, type ProcessRecord } from '../../src/sandbox/processes.js';
import { findService, podsOf, sandboxConfig, sandboxNamespaces, type SandboxPod } from '../../src/sandbox/sandbox-config.js';
import { sandboxDown, sandboxExec, sandboxStatus, sandboxUp, type SandboxUpResult } from '../../src/sandbox/index.js';
import { readState } from '../../src/sandbox/state.js';
import type { EchoReply } from '../../src/sandbox/workloads/echo-server.js';

const NAME = `kts${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const isRoot = process.getuid?.() === 0;
const missing = ['curl', 'dig', 'dnsmasq', 'redis-server', 'iperf3', 'nft'].filter((b) => findBinary(b) === null);
const skip = !isRoot ? 'needs root: creates network namespaces' : missing.length > 0 ? `needs ${missing.join(', ')}` : false;

const echoServer = fileURLToPath(new URL('../../src/sandbox/workloads/echo-server.js', import.meta.url));
const managerPod = podsOf(config, 'traffic-manager')[0]!;
// The real traffic manager is another part of kubetun: an echo server stands in for it, so that the test can
// see who reaches the manager's pod through the node port.
const MANAGER_STAND_IN = [process.execPath, echoServer, '--pod', managerPod.name, '--namespace', 'kubetun', '--port', '8081'];

const client: SandboxPod = podsOf(config, 'orders', 'shop')[0]!;
const echo = findService(config, 'echo')!;
let first: SandboxUpResult | undefined;

function inNetns(netns: string, command: string[], timeoutMs = 10_000): Promise<CommandResult> {
  return runInNetns(netns, command[0]!, command.slice(1), { allowFailure: true, timeoutMs });
}

async function curlJson(netns: string, url: string): Promise<EchoReply> {
  const result = await inNetns(netns, ['curl', '-sS', '--max-time', '5', '-g', '-H', 'accept: application/json', url]);
  assert.equal(result.code, 0, `curl ${url}: ${result.stderr}`);
  return JSON.parse(result.stdout) as EchoReply;
}

async function dig(netns: string, args: string[]): Promise<CommandResult> {
  return inNetns(netns, ['dig', '+time=2', '+tries=1', ...args]);
}

before(async () => {
  if (skip !== false) return;
  await sandboxDown(NAME);
  first = await sandboxUp(NAME, { managerCommand: MANAGER_STAND_IN, readinessTimeoutMs: 15_000 });
});

after(async () => {
  if (skip !== false) return;
  await sandboxDown(NAME);
});

test('up creates every namespace and pod, all running and answering', { skip }, () => {
  assert.ok(first !== undefined);
  assert.equal(first.alreadyUp, false);
  assert.deepEqual(first.warnings, []);
  assert.equal(first.status.state, 'up', first.status.problems.join('; '));
  assert.equal(first.status.pods.length, config.pods.length);
  for (const pod of first.status.pods) assert.equal(pod.phase, 'running', pod.name);
  const existing = existingNetns();
  for (const ns of sandboxNamespaces(config)) assert.ok(existing.has(ns), ns);
  assert.ok(existsSync(`/etc/netns/${config.namespaces.workstation}/resolv.conf`));
});

test('a pod reaches the echo ClusterIP, by IP and by name through its resolv.conf, and both replicas answer', { skip }, async () => {
  const byIp = await curlJson(client.netns, `http://${echo.clusterIPs.ipv4}/`);
  assert.ok(byIp.pod.startsWith('echo-'));
  // No masquerade between pods: the server sees the client pod's own address.
  assert.equal(byIp.client.address, client.ipv4);
  const byName = await curlJson(client.netns, 'http://echo.default/');
  assert.ok(byName.pod.startsWith('echo-'));
  const answered = new Set<string>();
  for (let i = 0; i < 24 && answered.size < 2; i++) answered.add((await curlJson(client.netns, `http://${echo.clusterIPs.ipv4}/`)).pod);
  assert.deepEqual([...answered].sort(), podsOf(config, 'echo').map((p) => p.name).sort());
});

test('the IPv6 ClusterIP works too', { skip }, async () => {
  const reply = await curlJson(client.netns, `http://[${echo.clusterIPs.ipv6}]/`);
  assert.ok(reply.pod.startsWith('echo-'));
  assert.equal(reply.client.address, client.ipv6);
});

test('pods reach each other by pod IP, IPv4 and IPv6, with their own source addresses', { skip }, async () => {
  const target = podsOf(config, 'echo')[1]!;
  const v4 = await curlJson(client.netns, `http://${target.ipv4}/`);
  assert.deepEqual([v4.pod, v4.client.address], [target.name, client.ipv4]);
  const v6 = await curlJson(client.netns, `http://[${target.ipv6}]/`);
  assert.deepEqual([v6.pod, v6.client.address], [target.name, client.ipv6]);
});

test('a pod reaching its own service through the ClusterIP (hairpin) gets answers from itself too', { skip }, async () => {
  const self = podsOf(config, 'echo')[0]!;
  const pods = new Set<string>();
  for (let i = 0; i < 24 && pods.size < 2; i++) pods.add((await curlJson(self.netns, `http://${echo.clusterIPs.ipv4}/`)).pod);
  assert.ok(pods.has(self.name));
});

test('cluster DNS answers A, AAAA, SRV and PTR; unknown cluster names are NXDOMAIN at once', { skip }, async () => {
  const a = await dig(client.netns, ['+short', '@10.96.0.10', 'echo.default.svc.cluster.local', 'A']);
  assert.equal(a.stdout.trim(), echo.clusterIPs.ipv4);
  const aaaa = await dig(client.netns, ['+short', '@10.96.0.10', 'echo.default.svc.cluster.local', 'AAAA']);
  assert.equal(aaaa.stdout.trim(), echo.clusterIPs.ipv6);
  const tcp = await dig(client.netns, ['+short', '+tcp', '@fd10:96::a', 'orders.shop.svc.cluster.local']);
  assert.equal(tcp.stdout.trim(), findService(config, 'orders', 'shop')!.clusterIPs.ipv4);
  const srv = await dig(client.netns, ['+short', '@10.96.0.10', 'SRV', '_http._tcp.echo.default.svc.cluster.local']);
  assert.equal(srv.stdout.trim(), '0 100 80 echo.default.svc.cluster.local.');
  const ptr = await dig(client.netns, ['+short', '@10.96.0.10', '-x', echo.clusterIPs.ipv4]);
  assert.equal(ptr.stdout.trim(), 'echo.default.svc.cluster.local.');
  const started = Date.now();
  const unknown = await dig(client.netns, ['@10.96.0.10', 'nope.default.svc.cluster.local']);
  assert.match(unknown.stdout, /status: NXDOMAIN/);
  assert.ok(Date.now() - started < 1_500, 'NXDOMAIN comes at once, not after a forward');
});

test('redis SET and GET through the ClusterIP', { skip: skip || (findBinary('redis-cli') === null && 'needs redis-cli') }, async () => {
  const redis = findService(config, 'redis')!.clusterIPs.ipv4;
  const set = await inNetns(client.netns, ['redis-cli', '-h', redis, 'SET', 'sandbox-test', 'hello']);
  assert.equal(set.stdout.trim(), 'OK', set.stderr);
  const get = await inNetns(client.netns, ['redis-cli', '-h', 'redis.default', 'GET', 'sandbox-test']);
  assert.equal(get.stdout.trim(), 'hello', get.stderr);
});

test('from the workstation: no route to the cluster, upstream names resolve, the manager is at the node port', { skip }, async () => {
  const ws = config.namespaces.workstation;
  const route = await inNetns(ws, ['ip', 'route', 'get', config.clusterDns.ipv4]);
  assert.notEqual(route.code, 0);
  assert.match(route.stderr, /unreachable/i);
  const curl = await inNetns(ws, ['curl', '-sS', '--max-time', '3', `http://${echo.clusterIPs.ipv4}/`]);
  assert.equal(curl.code, 7, 'curl fails to connect at once');
  const upstream = await dig(ws, ['+short', 'www.upstream.test']);
  assert.equal(upstream.stdout.trim(), '198.18.0.1');
  const upstream6 = await dig(ws, ['+short', '@2001:2::1', 'www.upstream.test', 'AAAA']);
  assert.equal(upstream6.stdout.trim(), '2001:2::1');
  const nx = await dig(ws, ['www.example.com']);
  assert.match(nx.stdout, /status: NXDOMAIN/);
  const manager = await curlJson(ws, `${config.manager.url}/`);
  assert.equal(manager.pod, managerPod.name);
  assert.equal(manager.client.address, config.link.workstation.ipv4);
  const manager6 = await curlJson(ws, `${config.manager.ipv6Url}/`);
  assert.equal(manager6.client.address, config.link.workstation.ipv6);
});

test('sandbox exec runs in the workstation with the manager URL and passes the exit code through', { skip }, async () => {
  const code = await sandboxExec(NAME, [
    'sh',
    '-c',
    `test "$KUBETUN_MANAGER_URL" = "${config.manager.url}" && test "$KUBETUN_SANDBOX" = "${NAME}" && ip -o addr show eth0 | grep -q 198.18.0.2 && exit 7`,
  ]);
  assert.equal(code, 7);
});

test('up again changes nothing; after a pod process dies, up restarts it', { skip }, async () => {
  const again = await sandboxUp(NAME, { managerCommand: MANAGER_STAND_IN });
  assert.equal(again.alreadyUp, true);
  assert.deepEqual(again.actions, []);
  const victim = podsOf(config, 'echo')[1]!;
  const before = readState(config)!.processes[victim.name]!;
  process.kill(before.pid, 'SIGKILL');
  const repaired = await sandboxUp(NAME, { managerCommand: MANAGER_STAND_IN });
  assert.equal(repaired.repaired, true);
  assert.equal(repaired.actions.length, 1, repaired.actions.join('; '));
  assert.match(repaired.actions[0]!, new RegExp(`restarted ${victim.name}`));
  assert.equal(repaired.status.state, 'up');
  assert.equal((await curlJson(victim.netns, 'http://127.0.0.1/')).pod, victim.name);
  assert.equal((await sandboxStatus(NAME)).state, 'up');
});

test('down removes every namespace, /etc/netns entry, process and the state; down again is safe', { skip }, async () => {
  const records: ProcessRecord[] = Object.values(readState(config)!.processes);
  assert.ok(records.length > 0);
  const result = await sandboxDown(NAME);
  assert.equal(result.found, true);
  assert.deepEqual(result.warnings, []);
  const existing = existingNetns();
  for (const ns of sandboxNamespaces(config)) {
    assert.ok(!existing.has(ns), `namespace ${ns} is gone`);
    assert.ok(!existsSync(`/etc/netns/${ns}`), `/etc/netns/${ns} is gone`);
  }
  for (const record of records) assert.equal(isAlive(record), false, `${record.id} (pid ${record.pid}) is stopped`);
  assert.equal(existsSync(config.stateDir), false);
  assert.equal((await sandboxStatus(NAME)).state, 'down');
  const again = await sandboxDown(NAME);
  assert.equal(again.found, false);
});
