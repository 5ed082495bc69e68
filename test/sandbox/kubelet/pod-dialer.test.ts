// The sandbox kubelet's port-forward dial, in a test network namespace: localhost inside the pod's namespace (a
// server bound to the pod's loopback only is reached), the socket handed over with nothing lost, IPv6 loopback
// as the fallback, errors named; and runAsUser/runAsNonRoot as the kubelet turns them into a setpriv prefix.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { PodDialer } from '../../../src/sandbox/kubelet/pod-dialer.js';
import { runAsPrefix } from '../../../src/sandbox/kubelet/run-as.js';
import { TestNetns } from '../../helpers/netns.js';

// A server that speaks first (as HTTP/2 does with SETTINGS) and then echoes, bound only where it is told.
const SERVER = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => { s.write('hello from the pod\\n'); s.pipe(s); }).listen(Number(port), host, () => console.log('listening'));
`;

async function podNamespace(t: TestContext): Promise<{ ns: TestNetns; dialer: PodDialer } | null> {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: creates a network namespace');
    return null;
  }
  const ns = await TestNetns.create('dial');
  const dialer = new PodDialer(ns.name);
  t.after(async () => {
    dialer.close();
    await ns.destroy();
  });
  await ns.exec('ip', ['link', 'set', 'lo', 'up']);
  return { ns, dialer };
}

async function serve(ns: TestNetns, host: string, port: number): Promise<void> {
  const child = ns.spawn(process.execPath, ['-e', SERVER, host, String(port)]);
  await once(child.stdout!, 'data');
}

async function exchange(socket: Socket, text: string): Promise<string> {
  let got = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (got += chunk));
  socket.write(text);
  while (!got.endsWith(text)) await once(socket, 'data');
  socket.destroy();
  return got;
}

test('a port-forward dial reaches a server bound to the pod loopback only; the first bytes the server sent arrive', async (t) => {
  const pod = await podNamespace(t);
  if (pod === null) return;
  const { ns, dialer } = pod;
  await serve(ns, '127.0.0.1', 8081);
  await serve(ns, '::1', 8082);
  assert.equal(await exchange(await dialer.dial(8081), 'ping\n'), 'hello from the pod\nping\n');
  assert.equal(await exchange(await dialer.dial(8082), 'ping6\n'), 'hello from the pod\nping6\n', 'IPv6 loopback is tried after IPv4');
  // The node's own loopback is another namespace: the same port there is not what the dial reaches.
  const nodeServer = createServer((s) => s.end('node\n')).listen(0, '127.0.0.1');
  await once(nodeServer, 'listening');
  t.after(() => nodeServer.close());
  const nodePort = (nodeServer.address() as { port: number }).port;
  await assert.rejects(dialer.dial(nodePort), /ECONNREFUSED/);
  // Closed with its pod: no more dials, and no child left holding the namespace.
  dialer.close();
  await assert.rejects(dialer.dial(8081), /is being removed/);
});

test('a refused port is an error naming it; many concurrent dials each get their own socket', async (t) => {
  const pod = await podNamespace(t);
  if (pod === null) return;
  const { ns, dialer } = pod;
  let started = performance.now();
  await assert.rejects(dialer.dial(9), /connect ECONNREFUSED ::1:9/);
  t.diagnostic(`the first dial (starting the dialer) took ${Math.round(performance.now() - started)} ms`);
  await serve(ns, '127.0.0.1', 8081);
  started = performance.now();
  const sockets = await Promise.all(Array.from({ length: 100 }, () => dialer.dial(8081)));
  t.diagnostic(`100 concurrent dials took ${Math.round(performance.now() - started)} ms`);
  assert.equal(new Set(sockets.map((s) => s.localPort)).size, 100);
  for (const [i, socket] of sockets.entries()) assert.equal(await exchange(socket, `n${i}\n`), `hello from the pod\nn${i}\n`);
  await assert.rejects(dialer.dial(70000), /70000 is not a port number/);
});

test('runAsUser/runAsGroup become setpriv options, the container over the pod; runAsNonRoot without a user is refused', () => {
  const pod = { securityContext: { runAsUser: 1000, runAsGroup: 2000, runAsNonRoot: true } };
  assert.deepEqual(runAsPrefix(pod, { name: 'c' }), { ok: true, prefix: ['setpriv', '--reuid=1000', '--regid=2000', '--clear-groups', '--'] });
  assert.deepEqual(
    runAsPrefix(pod, { name: 'c', securityContext: { runAsUser: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }),
    { ok: true, prefix: ['setpriv', '--reuid=65532', '--regid=2000', '--clear-groups', '--no-new-privs', '--bounding-set=-all', '--'] },
  );
  assert.deepEqual(runAsPrefix({}, { name: 'c', securityContext: { runAsUser: 7 } }), { ok: true, prefix: ['setpriv', '--reuid=7', '--regid=7', '--clear-groups', '--'] });
  assert.deepEqual(runAsPrefix({}, { name: 'c' }), { ok: true, prefix: [] });
  const refused = runAsPrefix({ securityContext: { runAsNonRoot: true } }, { name: 'c' });
  assert.ok(!refused.ok && refused.reason === 'CreateContainerConfigError' && /container c has runAsNonRoot and has no runAsUser/.test(refused.message));
  const zero = runAsPrefix({}, { name: 'c', securityContext: { runAsNonRoot: true, runAsUser: 0 } });
  assert.ok(!zero.ok && /runAsUser 0/.test(zero.message));
  const bad = runAsPrefix({}, { name: 'c', securityContext: { runAsUser: -1 } });
  assert.ok(!bad.ok && /runAsUser -1 is not a uid/.test(bad.message));
});

test('capabilities: an add alone keeps root whole; drop ALL with add NET_ADMIN keeps just that (the agent init container); bad names are refused', () => {
  const add = { capabilities: { add: ['NET_ADMIN'] } };
  assert.deepEqual(runAsPrefix({}, { name: 'init', securityContext: { runAsUser: 0, ...add } }), { ok: true, prefix: [] });
  assert.deepEqual(runAsPrefix({}, { name: 'init', securityContext: { runAsUser: 0, capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'CAP_NET_RAW'] } } }), {
    ok: true,
    prefix: ['setpriv', '--bounding-set=-all,+net_admin,+net_raw', '--'],
  });
  assert.deepEqual(runAsPrefix({}, { name: 'c', securityContext: { capabilities: { drop: ['NET_RAW'] } } }), { ok: true, prefix: ['setpriv', '--bounding-set=-net_raw', '--'] });
  const bad = runAsPrefix({}, { name: 'c', securityContext: { capabilities: { drop: ['ALL'], add: ['net_admin,+sys_admin'] } } });
  assert.ok(!bad.ok && /container c: "net_admin,\+sys_admin" is not a capability name/.test(bad.message));
});

test("the pod's fsGroup is the process's supplementary group, so it reads the volumes shared with that group", () => {
  assert.deepEqual(runAsPrefix({ securityContext: { runAsUser: 1000, fsGroup: 3000 } }, { name: 'c' }), {
    ok: true,
    prefix: ['setpriv', '--reuid=1000', '--regid=1000', '--groups=3000', '--'],
  });
  assert.deepEqual(runAsPrefix({ securityContext: { fsGroup: 3000 } }, { name: 'c' }), { ok: true, prefix: ['setpriv', '--groups=3000', '--'] });
  const bad = runAsPrefix({ securityContext: { fsGroup: 1.5 } }, { name: 'c' });
  assert.ok(!bad.ok && /fsGroup 1\.5 is not a uid\/gid/.test(bad.message));
});
