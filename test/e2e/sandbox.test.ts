// The sandbox cluster end to end: a real control plane, two nodes of our kubelet with their own pod CIDRs, the
// workloads as Deployments applied through the API, ClusterIPs through our kube-proxy, the cluster DNS pod, the
// workstation's upstream resolver, repair, and a clean `down`. Runs as root, under its own sandbox name.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseIp, parsePrefix, prefixContains } from '../../src/netstack/wire/ip-address.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';
import { probeConnections, type ProbeRunner } from '../helpers/connect-probe.js';
import { findBinary, runInNetns, type CommandResult } from '../../src/sandbox/host-commands.js';
import { podNetnsName } from '../../src/sandbox/kubelet/pod-env.js';
import { existingNetns } from '../../src/sandbox/network.js';
import { isAlive, type ProcessRecord } from '../../src/sandbox/processes.js';
import { findService, sandboxConfig, sandboxNamespaces } from '../../src/sandbox/sandbox-config.js';
import {
  podsOf,
  readCluster,
  sandboxApi,
  sandboxDown,
  sandboxExec,
  sandboxStatus,
  sandboxUp,
  type ClusterPod,
  type SandboxUpResult,
} from '../../src/sandbox/index.js';
import { readState } from '../../src/sandbox/state.js';
import type { EchoReply } from '../../src/sandbox/workloads/echo-server.js';

const NAME = `kts${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const missing = ['curl', 'dig', 'dnsmasq', 'redis-server', 'iperf3', 'nft'].filter((b) => findBinary(b) === null);
const skip = controlPlaneSkipReason() ?? (missing.length > 0 ? `needs ${missing.join(', ')}` : false);

const echo = findService(config, 'echo')!;
let first: SandboxUpResult | undefined;
let pods: ClusterPod[] = [];

const netnsOf = (pod: ClusterPod): string => podNetnsName(config.podNetnsPrefix, { metadata: { name: pod.name, namespace: pod.namespace, uid: '' } });
const client = (): ClusterPod => podsOf(pods, 'orders', 'shop')[0]!;

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

/** A process's environment, as /proc shows it. */
function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((e) => e.includes('='));
  return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function apiJson<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const [answer] = await sandboxApi(config, [{ method, path, ...(body === undefined ? {} : { body }) }]);
  return { status: answer!.status, body: (answer!.body.startsWith('{') ? JSON.parse(answer!.body) : answer!.body) as T };
}

const inside = (cidrs: readonly string[], ip: string): boolean => cidrs.some((c) => prefixContains(parsePrefix(c), parseIp(ip)));

before(async () => {
  if (skip !== false) return;
  await sandboxDown(NAME);
  first = await sandboxUp(NAME);
  pods = (await readCluster(config)).pods;
});

after(async () => {
  if (skip !== false) return;
  await sandboxDown(NAME);
});

test('up starts a control plane, two Ready nodes and every Deployment, with pod IPs from their node\'s CIDRs', { skip }, () => {
  assert.ok(first !== undefined);
  assert.equal(first.alreadyUp, false);
  assert.equal(first.status.state, 'up', first.status.problems.join('; '));
  assert.deepEqual(first.status.nodes.map((n) => [n.name, n.ready]), config.nodes.map((n) => [n.name, true]));
  for (const d of config.deployments) assert.equal(podsOf(pods, d.name, d.namespace).filter((p) => p.ready).length, d.replicas, d.name);
  for (const pod of pods) {
    const node = config.nodes.find((n) => n.name === pod.node);
    assert.ok(node !== undefined, `${pod.name} runs on ${pod.node}`);
    assert.ok(inside(node.podCidrs, pod.ipv4) && inside(node.podCidrs, pod.ipv6), `${pod.name} ${pod.ipv4} ${pod.ipv6} inside ${node.podCidrs.join(',')}`);
    assert.ok(existingNetns().has(netnsOf(pod)), `${pod.name}'s network namespace`);
  }
  const existing = existingNetns();
  for (const ns of sandboxNamespaces(config)) assert.ok(existing.has(ns), ns);
  assert.ok(existsSync(`/etc/netns/${config.namespaces.workstation}/resolv.conf`));
});

test('a pod reaches the echo ClusterIP, by IP and by name through its resolv.conf, and both replicas answer', { skip }, async () => {
  const byIp = await curlJson(netnsOf(client()), `http://${echo.clusterIPs.ipv4}/`);
  assert.ok(byIp.pod.startsWith('echo-'));
  // No masquerade between pods: the server sees the client pod's own address.
  assert.equal(byIp.client.address, client().ipv4);
  const byName = await curlJson(netnsOf(client()), 'http://echo.default/');
  assert.ok(byName.pod.startsWith('echo-'));
  const answered = new Set<string>();
  for (let i = 0; i < 24 && answered.size < 2; i++) answered.add((await curlJson(netnsOf(client()), `http://${echo.clusterIPs.ipv4}/`)).pod);
  assert.deepEqual([...answered].sort(), podsOf(pods, 'echo').map((p) => p.name).sort());
});

test('the IPv6 ClusterIP works too', { skip }, async () => {
  const reply = await curlJson(netnsOf(client()), `http://[${echo.clusterIPs.ipv6}]/`);
  assert.ok(reply.pod.startsWith('echo-'));
  assert.equal(reply.client.address, client().ipv6);
});

test('pods reach each other by pod IP, IPv4 and IPv6, across both nodes, with their own source addresses', { skip }, async () => {
  for (const target of podsOf(pods, 'echo')) {
    const v4 = await curlJson(netnsOf(client()), `http://${target.ipv4}/`);
    assert.deepEqual([v4.pod, v4.client.address], [target.name, client().ipv4]);
    const v6 = await curlJson(netnsOf(client()), `http://[${target.ipv6}]/`);
    assert.deepEqual([v6.pod, v6.client.address], [target.name, client().ipv6]);
  }
});

test('the node itself (where the API server runs) reaches the echo Service by ClusterIP, IPv4 and IPv6, and gets a pod\'s answer', { skip }, async () => {
  const node = config.namespaces.node;
  const echoPods = podsOf(pods, 'echo').map((p) => p.name);
  const v4 = await curlJson(node, `http://${echo.clusterIPs.ipv4}/`);
  assert.ok(echoPods.includes(v4.pod), v4.pod);
  const v6 = await curlJson(node, `http://[${echo.clusterIPs.ipv6}]/`);
  assert.ok(echoPods.includes(v6.pod), v6.pod);
});

test('a port the echo Service does not define is refused at once, IPv4 and IPv6, TCP and UDP, from a pod and from the node', { skip }, async () => {
  for (const netns of [netnsOf(client()), config.namespaces.node]) {
    const run: ProbeRunner = (cmd, args) => inNetns(netns, [cmd, ...args]);
    const targets = [echo.clusterIPs.ipv4, echo.clusterIPs.ipv6].flatMap((host) => [
      { protocol: 'tcp' as const, host, port: 81 },
      { protocol: 'udp' as const, host, port: 81 },
    ]);
    const outcomes = await probeConnections(run, targets, 2_000);
    for (const [i, o] of outcomes.entries()) {
      const what = `${netns}: ${targets[i]!.protocol} ${targets[i]!.host} port 81`;
      assert.equal(o.outcome, 'ECONNREFUSED', what);
      assert.ok(o.ms < 300, `${what} refused after ${o.ms} ms`);
    }
  }
});

test('up puts back a deleted service route of the node, and only that', { skip }, async () => {
  const node = config.namespaces.node;
  const deleted = await inNetns(node, ['ip', '-6', 'route', 'del', 'fd10:96::/112', 'dev', config.bridge.name]);
  assert.equal(deleted.code, 0, deleted.stderr);
  const repaired = await sandboxUp(NAME);
  assert.deepEqual(repaired.actions, [`restored the routes of ${node} to the service CIDRs`]);
  const v6 = await curlJson(node, `http://[${echo.clusterIPs.ipv6}]/`);
  assert.ok(v6.pod.startsWith('echo-'));
});

test("the echo pods' environment holds the plain value, the ConfigMap's and the Secret's, and envFrom's with its prefix", { skip }, () => {
  for (const pod of podsOf(pods, 'echo')) {
    assert.ok(pod.pid !== null, pod.name);
    const env = environOf(pod.pid);
    assert.equal(env.GREETING, 'hello');
    assert.equal(env.ECHO_COLOR, 'blue');
    assert.equal(env.ECHO_TOKEN, 's3cret-token');
    assert.equal(env.CFG_color, 'blue');
    assert.equal(env.POD_NAME, pod.name);
  }
});

test('echo answers h2c with prior knowledge through its ClusterIP, with x-served-by and the request headers; hello (numeric targetPort) answers too', { skip }, async () => {
  const result = await inNetns(netnsOf(client()), [
    'curl', '-sS', '--max-time', '5', '--http2-prior-knowledge', '-D', '-', '-H', 'accept: application/json', '-H', 'x-dev: alice', `http://${echo.clusterIPs.ipv4}/?headers=1`,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const split = result.stdout.indexOf('\r\n\r\n');
  const [head, body] = [result.stdout.slice(0, split), result.stdout.slice(split + 4)];
  const reply = JSON.parse(body) as EchoReply;
  assert.equal(reply.httpVersion, '2.0');
  assert.equal(reply.headers?.['x-dev'], 'alice');
  assert.match(head, /^HTTP\/2 200/);
  assert.match(head, new RegExp(`\r\nx-served-by: ${reply.pod}(\r\n|$)`));
  const hello = await curlJson(netnsOf(client()), 'http://hello.default/');
  assert.deepEqual([hello.pod], podsOf(pods, 'hello').map((p) => p.name));
});

test('a container whose ConfigMap is missing waits (CreateContainerConfigError, with a Warning event) after its NET_ADMIN init container redirected a port with nft, and starts once the ConfigMap exists', { skip }, async () => {
  const name = 'late-config';
  const echoImage = config.deployments.find((d) => d.name === 'echo')!.image;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 1,
      initContainers: [
        {
          name: 'redirect',
          image: echoImage,
          command: ['nft', 'add table ip kt_probe; add chain ip kt_probe prerouting { type nat hook prerouting priority dstnat; }; add rule ip kt_probe prerouting tcp dport 81 redirect to :80'],
          securityContext: { runAsUser: 0, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } },
        },
      ],
      containers: [
        {
          name: 'echo',
          image: echoImage,
          args: ['--port', '80'],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'LATE', valueFrom: { configMapKeyRef: { name, key: 'value' } } },
          ],
          readinessProbe: { tcpSocket: { port: 80 }, periodSeconds: 1 },
        },
      ],
    },
  };
  const created = await apiJson('POST', '/api/v1/namespaces/default/pods', pod);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  try {
    type PodStatus = { status?: { initContainerStatuses?: { state: { terminated?: { exitCode: number } } }[]; containerStatuses?: { state: { waiting?: { reason: string; message?: string } } }[] } };
    const waiting = await until('CreateContainerConfigError', 60_000, async () => {
      const { body } = await apiJson<PodStatus>('GET', `/api/v1/namespaces/default/pods/${name}`);
      const state = body.status?.containerStatuses?.[0]?.state.waiting;
      return state?.reason === 'CreateContainerConfigError' ? { state, init: body.status?.initContainerStatuses?.[0] } : null;
    });
    assert.equal(waiting.state.message, `configmap "${name}" not found`);
    assert.equal(waiting.init?.state.terminated?.exitCode, 0, 'the init container ran nft and completed');
    type EventList = { items: { type: string; reason: string; message: string; involvedObject: { fieldPath?: string }; source: { component: string } }[] };
    const event = await until('the Warning event', 20_000, async () => {
      const { body } = await apiJson<EventList>('GET', `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D${name}`);
      return body.items.find((e) => e.type === 'Warning' && e.reason === 'Failed');
    });
    assert.equal(event.message, `Error: configmap "${name}" not found`);
    assert.equal(event.involvedObject.fieldPath, 'spec.containers{echo}');
    assert.equal(event.source.component, 'kubelet');

    const configMap = await apiJson('POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { value: 'arrived' } });
    assert.equal(configMap.status, 201);
    const ready = await until('the pod Ready', 60_000, async () => podsOf((await readCluster(config)).pods, name).find((p) => p.ready && p.pid !== null));
    assert.equal(environOf(ready.pid!).LATE, 'arrived');
    // The init container's redirect lives in the pod's namespace, not the node's.
    const redirected = await curlJson(netnsOf(client()), `http://${ready.ipv4}:81/`);
    assert.equal(redirected.pod, name);
    assert.equal(redirected.server.port, 80);
    const onNode = await inNetns(config.namespaces.node, ['nft', 'list', 'table', 'ip', 'kt_probe']);
    assert.notEqual(onNode.code, 0);
  } finally {
    await sandboxApi(config, [
      { method: 'DELETE', path: `/api/v1/namespaces/default/pods/${name}` },
      { method: 'DELETE', path: `/api/v1/namespaces/default/configmaps/${name}` },
    ]);
    await until('the pod gone', 60_000, async () => (await apiJson('GET', `/api/v1/namespaces/default/pods/${name}`)).status === 404);
  }
});

test('a pod reaching its own service through the ClusterIP (hairpin) gets answers from itself too', { skip }, async () => {
  const self = podsOf(pods, 'echo')[0]!;
  const seen = new Set<string>();
  for (let i = 0; i < 24 && !seen.has(self.name); i++) seen.add((await curlJson(netnsOf(self), `http://${echo.clusterIPs.ipv4}/`)).pod);
  assert.ok(seen.has(self.name));
});

test('the cluster DNS pod answers A, AAAA, SRV and PTR; unknown cluster names are NXDOMAIN at once', { skip }, async () => {
  const ns = netnsOf(client());
  const a = await dig(ns, ['+short', '@10.96.0.10', 'echo.default.svc.cluster.local', 'A']);
  assert.equal(a.stdout.trim(), echo.clusterIPs.ipv4);
  const aaaa = await dig(ns, ['+short', '@10.96.0.10', 'echo.default.svc.cluster.local', 'AAAA']);
  assert.equal(aaaa.stdout.trim(), echo.clusterIPs.ipv6);
  const tcp = await dig(ns, ['+short', '+tcp', '@fd10:96::a', 'orders.shop.svc.cluster.local']);
  assert.equal(tcp.stdout.trim(), findService(config, 'orders', 'shop')!.clusterIPs.ipv4);
  const srv = await dig(ns, ['+short', '@10.96.0.10', 'SRV', '_http._tcp.echo.default.svc.cluster.local']);
  assert.match(srv.stdout.trim(), / 80 echo\.default\.svc\.cluster\.local\.$/);
  const ptr = await dig(ns, ['+short', '@10.96.0.10', '-x', echo.clusterIPs.ipv4]);
  assert.equal(ptr.stdout.trim(), 'echo.default.svc.cluster.local.');
  const started = Date.now();
  const unknown = await dig(ns, ['@10.96.0.10', 'nope.default.svc.cluster.local']);
  assert.match(unknown.stdout, /status: NXDOMAIN/);
  assert.ok(Date.now() - started < 1_500, 'NXDOMAIN comes at once, not after a forward');
  const upstream = await dig(ns, ['+short', 'www.upstream.test']);
  assert.equal(upstream.stdout.trim(), '198.18.0.1', 'names outside the cluster go upstream');
});

test('redis SET and GET through the ClusterIP', { skip: skip || (findBinary('redis-cli') === null && 'needs redis-cli') }, async () => {
  const redis = findService(config, 'redis')!.clusterIPs.ipv4;
  const set = await inNetns(netnsOf(client()), ['redis-cli', '-h', redis, 'SET', 'sandbox-test', 'hello']);
  assert.equal(set.stdout.trim(), 'OK', set.stderr);
  const get = await inNetns(netnsOf(client()), ['redis-cli', '-h', 'redis.default', 'GET', 'sandbox-test']);
  assert.equal(get.stdout.trim(), 'hello', get.stderr);
});

test('from the workstation: no route to the cluster, upstream names resolve, the API server answers', { skip }, async () => {
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
  const version = await inNetns(ws, ['curl', '-sS', '--max-time', '5', '--cacert', `${config.controlPlane.stateDir}/pki/ca.crt`, `${config.controlPlane.server}/version`]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal((JSON.parse(version.stdout) as { gitVersion: string }).gitVersion, 'v1.20.2');
});

test('sandbox exec runs in the workstation with its kubeconfig and passes the exit code through', { skip }, async () => {
  const code = await sandboxExec(NAME, [
    'sh',
    '-c',
    `test "$KUBECONFIG" = "${config.workstationKubeconfig}" && test -s "$KUBECONFIG" && test "$KUBETUN_SANDBOX" = "${NAME}" && ip -o addr show eth0 | grep -q 198.18.0.2 && exit 7`,
  ]);
  assert.equal(code, 7);
});

test('a deleted pod is replaced by its Deployment, on a new address, and is served again', { skip }, async () => {
  const victim = podsOf(pods, 'echo')[0]!;
  const [deleted] = await sandboxApi(config, [{ method: 'DELETE', path: `/api/v1/namespaces/default/pods/${victim.name}` }]);
  assert.equal(deleted?.status, 200, deleted?.body);
  let replaced: ClusterPod[] = [];
  for (let i = 0; i < 60; i++) {
    replaced = podsOf((await readCluster(config)).pods, 'echo').filter((p) => p.ready);
    if (replaced.length === 2 && !replaced.some((p) => p.name === victim.name)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(replaced.length, 2, 'two ready echo pods again');
  assert.ok(!replaced.some((p) => p.name === victim.name), 'the deleted pod is gone');
  assert.ok(!existingNetns().has(netnsOf(victim)), "the deleted pod's namespace is gone");
  pods = (await readCluster(config)).pods;
  const answered = new Set<string>();
  for (let i = 0; i < 24 && answered.size < 2; i++) answered.add((await curlJson(netnsOf(client()), `http://${echo.clusterIPs.ipv4}/`)).pod);
  assert.deepEqual([...answered].sort(), replaced.map((p) => p.name).sort());
});

test('up again changes nothing; after a kubelet dies, up restarts it and its node is Ready again', { skip }, async () => {
  const again = await sandboxUp(NAME);
  assert.equal(again.alreadyUp, true, again.actions.join('; '));
  assert.deepEqual(again.actions, []);
  const before = readState(config)!.processes['kubelet-node-2']!;
  process.kill(before.pid, 'SIGKILL');
  const repaired = await sandboxUp(NAME);
  assert.equal(repaired.repaired, true);
  assert.deepEqual(repaired.actions.map((a) => a.replace(/ \(pid \d+\)/, '')), [`restarted kubelet-node-2 in ${config.namespaces.node}`]);
  assert.equal(repaired.status.state, 'up', repaired.status.problems.join('; '));
  // Our kubelet restarts the pods it finds from before its crash (a real one would adopt their containers).
  let served = false;
  for (let i = 0; i < 60 && !served; i++) {
    pods = (await readCluster(config)).pods;
    const target = client();
    served = target?.ready === true && (await inNetns(netnsOf(target), ['curl', '-sS', '--max-time', '2', `http://${echo.clusterIPs.ipv4}/`])).code === 0;
    if (!served) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(served, 'the echo service is served again within 30 s');
});

test('down removes every namespace, /etc/netns entry, process and the state; down again is safe', { skip }, async () => {
  const records: ProcessRecord[] = Object.values(readState(config)!.processes);
  assert.ok(records.length > 0);
  const result = await sandboxDown(NAME);
  assert.equal(result.found, true);
  assert.deepEqual(result.warnings, []);
  const existing = existingNetns();
  for (const ns of [...sandboxNamespaces(config), ...pods.map(netnsOf)]) {
    assert.ok(!existing.has(ns), `namespace ${ns} is gone`);
    assert.ok(!existsSync(`/etc/netns/${ns}`), `/etc/netns/${ns} is gone`);
  }
  assert.deepEqual([...existing].filter((n) => n.startsWith(config.podNetnsPrefix)), []);
  assert.deepEqual((existsSync('/etc/netns') ? readdirSync('/etc/netns') : []).filter((n) => n.startsWith(`${NAME}-`)), []);
  for (const record of records) assert.equal(isAlive(record), false, `${record.id} (pid ${record.pid}) is stopped`);
  assert.equal(existsSync(config.stateDir), false);
  assert.equal((await sandboxStatus(NAME)).state, 'down');
  const again = await sandboxDown(NAME);
  assert.equal(again.found, false);
});
