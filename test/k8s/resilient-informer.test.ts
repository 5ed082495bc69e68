// ResilientInformer against a mock API server on loopback: first sync, debounced changes, restart after 410 Gone
// and after connection loss (with a fresh list), resuming after a normal watch end, 403 with failFast, stop().
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { KubeConfig, type V1Node } from '@kubernetes/client-node';
import { KubeApiError, ResilientInformer } from '../../src/k8s/resilient-informer.js';

function node(name: string, rv: string, podCIDR = '10.244.0.0/24'): V1Node {
  return { metadata: { name, resourceVersion: rv }, spec: { podCIDR } };
}

/** A mock API server for one collection: answers lists from `items`, keeps watches open for the test to feed. */
class MockApi {
  items: V1Node[] = [];
  rv = 10;
  listStatus = 200;
  lists: URL[] = [];
  watches: URL[] = [];
  private open: http.ServerResponse[] = [];
  private watchWaiters: (() => void)[] = [];
  readonly server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    if (url.searchParams.get('watch') === 'true') {
      this.watches.push(url);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      this.open.push(res);
      for (const w of this.watchWaiters.splice(0)) w();
      return;
    }
    this.lists.push(url);
    if (this.listStatus !== 200) {
      res.writeHead(this.listStatus, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', message: 'nodes is forbidden: User "u" cannot list resource "nodes"', reason: 'Forbidden' }));
      return;
    }
    // Pages as the API server cuts them: `limit` objects, and a continue token while more are left.
    const limit = Number(url.searchParams.get('limit') ?? this.items.length);
    const from = Number(url.searchParams.get('continue') ?? 0);
    const more = from + limit < this.items.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      kind: 'NodeList',
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(from + limit) } : {}) },
      items: this.items.slice(from, from + limit),
    }));
  });

  async listen(): Promise<KubeConfig> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const { port } = this.server.address() as AddressInfo;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'mock', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'mock', cluster: 'mock', user: 'u' }],
      currentContext: 'mock',
    });
    return kc;
  }

  /** Resolves once `n` watches have been opened in total. */
  async watchCount(n: number): Promise<void> {
    while (this.watches.length < n) await new Promise<void>((r) => this.watchWaiters.push(r));
  }

  send(type: string, object: object): void {
    for (const res of this.open) res.write(`${JSON.stringify({ type, object })}\n`);
  }

  endWatches(): void {
    for (const res of this.open.splice(0)) res.end();
  }

  dropConnections(): void {
    for (const res of this.open.splice(0)) res.socket?.destroy();
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function setup(t: TestContext, options: { debounceMs?: number; pageSize?: number; transform?: (node: V1Node) => V1Node } = {}) {
  const api = new MockApi();
  const kubeConfig = await api.listen();
  const informer = new ResilientInformer<V1Node>({
    kubeConfig,
    path: '/api/v1/nodes',
    labelSelector: 'tier=a',
    fieldSelector: 'spec.unschedulable=false',
    backoff: { initialMs: 20, maxMs: 100 },
    debounceMs: options.debounceMs ?? 50,
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    ...(options.transform === undefined ? {} : { transform: options.transform }),
  });
  const changes: string[][] = [];
  const errors: Error[] = [];
  informer.on('change', (items) => changes.push(items.map((n) => `${n.metadata?.name}@${n.metadata?.resourceVersion}`).sort()));
  informer.on('error', (e) => errors.push(e));
  t.after(() => {
    informer.stop();
    api.close();
  });
  return { api, informer, changes, errors };
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('mock API: first list syncs, selectors are sent, and a burst of watch events gives one debounced change', async (t) => {
  const { api, informer, changes } = await setup(t, { debounceMs: 100 });
  api.items = [node('a', '5')];
  informer.start();
  informer.start(); // idempotent
  const items = await informer.waitForSync({ timeoutMs: 3000 });
  assert.equal(informer.synced, true);
  assert.deepEqual(items.map((n) => n.metadata?.name), ['a']);
  assert.deepEqual(changes, [['a@5']]);
  assert.equal(api.lists.length, 1);
  assert.equal(api.lists[0]!.searchParams.get('labelSelector'), 'tier=a');
  assert.equal(api.lists[0]!.searchParams.get('fieldSelector'), 'spec.unschedulable=false');
  await api.watchCount(1);
  assert.equal(api.watches[0]!.searchParams.get('resourceVersion'), '10');
  assert.equal(api.watches[0]!.searchParams.get('labelSelector'), 'tier=a');
  api.send('ADDED', node('b', '11'));
  api.send('MODIFIED', node('a', '12'));
  api.send('ADDED', node('c', '13'));
  api.send('DELETED', node('b', '14'));
  await until(() => changes.length === 2, 'the debounced change');
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(changes, [['a@5'], ['a@12', 'c@13']]);
  assert.deepEqual(informer.items().map((n) => n.metadata?.name).sort(), ['a', 'c']);
});

test('mock API: lists are paginated (limit + continue) and cached whole only after the last page; transform trims every object', async (t) => {
  const trim = (n: V1Node): V1Node => ({ metadata: { name: n.metadata!.name!, resourceVersion: n.metadata!.resourceVersion! } });
  const { api, informer, changes } = await setup(t, { pageSize: 2, transform: trim });
  api.items = ['a', 'b', 'c', 'd', 'e'].map((name, i) => node(name, String(i + 1)));
  informer.start();
  await informer.waitForSync({ timeoutMs: 3000 });
  assert.deepEqual(api.lists.map((u) => [u.searchParams.get('limit'), u.searchParams.get('continue')]), [['2', null], ['2', '2'], ['2', '4']]);
  assert.deepEqual(changes, [['a@1', 'b@2', 'c@3', 'd@4', 'e@5']], 'one change, after the last page');
  assert.ok(informer.items().every((n) => n.spec === undefined), 'listed objects are trimmed');
  await api.watchCount(1);
  api.send('ADDED', node('f', '11'));
  await until(() => changes.length === 2, 'the watched object');
  assert.equal(informer.items().find((n) => n.metadata?.name === 'f')?.spec, undefined, 'watched objects are trimmed');
  // The default page size is sent even when none is given.
  const plain = await setup(t);
  plain.informer.start();
  await plain.informer.waitForSync({ timeoutMs: 3000 });
  assert.equal(plain.api.lists[0]!.searchParams.get('limit'), '500');
});

test('mock API: an ERROR 410 Gone event restarts with a fresh list that drops objects deleted meanwhile', async (t) => {
  const { api, informer, changes, errors } = await setup(t);
  api.items = [node('a', '5'), node('b', '6')];
  informer.start();
  await informer.waitForSync();
  await api.watchCount(1);
  api.items = [node('a', '5')]; // b was deleted while the watch was too old to tell us
  api.rv = 30;
  api.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (25)' });
  await api.watchCount(2);
  assert.equal(api.lists.length, 2);
  assert.equal(api.watches[1]!.searchParams.get('resourceVersion'), '30');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof KubeApiError);
  assert.equal(errors[0].statusCode, 410);
  assert.match(errors[0].message, /too old resource version/);
  await until(() => changes.length === 2, 'the change after the relist');
  assert.deepEqual(changes[1], ['a@5']);
});

test('mock API: a lost connection is reported and the informer relists and watches again', async (t) => {
  const { api, informer, changes, errors } = await setup(t);
  api.items = [node('a', '5')];
  informer.start();
  await informer.waitForSync();
  await api.watchCount(1);
  api.items = [node('a', '5'), node('z', '20')];
  api.dropConnections();
  await api.watchCount(2);
  assert.equal(api.lists.length, 2);
  assert.ok(errors.length >= 1);
  await until(() => changes.length === 2, 'the change after the relist');
  assert.deepEqual(changes[1], ['a@5', 'z@20']);
  // The new watch delivers events again.
  api.send('ADDED', node('y', '21'));
  await until(() => changes.length === 3, 'the change from the new watch');
  assert.deepEqual(changes[2], ['a@5', 'y@21', 'z@20']);
});

test('mock API: a watch the server ends normally resumes from the last resourceVersion without a new list', async (t) => {
  const { api, informer, errors } = await setup(t);
  informer.start();
  await informer.waitForSync();
  await api.watchCount(1);
  api.send('ADDED', node('a', '15'));
  api.send('BOOKMARK', { kind: 'Node', metadata: { resourceVersion: '17' } });
  await until(() => informer.items().length === 1, 'the added node');
  await new Promise((r) => setTimeout(r, 1100)); // a watch that ends at once is treated as a failure
  api.endWatches();
  await api.watchCount(2);
  assert.equal(api.lists.length, 1);
  assert.equal(api.watches[1]!.searchParams.get('resourceVersion'), '17');
  assert.deepEqual(errors, []);
});

test('mock API: watches the server ends at once are failures with backoff, not a busy loop', async (t) => {
  const { api, informer, errors } = await setup(t);
  informer.start();
  await informer.waitForSync();
  for (let n = 1; n <= 3; n++) {
    await api.watchCount(n);
    api.endWatches();
  }
  await api.watchCount(4);
  assert.equal(api.lists.length, 4, 'each failure relists');
  assert.equal(errors.length, 3);
  assert.match(errors[0]!.message, /ended the watch at once/);
});

test('mock API: 403 on list rejects waitForSync with failFast, naming the denial, and keeps retrying with backoff', async (t) => {
  const { api, informer, errors } = await setup(t);
  api.listStatus = 403;
  informer.start();
  await assert.rejects(informer.waitForSync({ failFast: true }), (e: unknown) => {
    assert.ok(e instanceof KubeApiError);
    assert.equal(e.statusCode, 403);
    assert.match(e.message, /list \/api\/v1\/nodes: 403 Forbidden: nodes is forbidden/);
    return true;
  });
  await until(() => api.lists.length >= 3, 'retries');
  assert.ok(errors.length >= 2);
  assert.equal(informer.synced, false);
  // Once permission is granted the informer recovers on its own.
  api.listStatus = 200;
  api.items = [node('a', '5')];
  const items = await informer.waitForSync({ timeoutMs: 3000 });
  assert.equal(items.length, 1);
});

test('mock API: waitForSync without failFast times out with a message naming the collection', async (t) => {
  const { api, informer } = await setup(t);
  api.listStatus = 500;
  informer.start();
  await assert.rejects(informer.waitForSync({ timeoutMs: 100 }), /timed out after 100 ms waiting for the first list of \/api\/v1\/nodes/);
});

test('mock API: after stop() no events fire and pending waits reject', async (t) => {
  const { api, informer, changes } = await setup(t);
  api.listStatus = 500;
  informer.start();
  const waiting = informer.waitForSync();
  await until(() => api.lists.length >= 1, 'the first list');
  informer.stop();
  await assert.rejects(waiting, /stopped/);
  const errorsAfter: Error[] = [];
  informer.on('error', (e) => errorsAfter.push(e));
  api.listStatus = 200;
  const lists = api.lists.length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(api.lists.length, lists);
  assert.deepEqual(changes, []);
  assert.deepEqual(errorsAfter, []);
});

test('a kubeconfig without a current cluster is reported as an error event (no API involved)', async () => {
  const informer = new ResilientInformer<V1Node>({ kubeConfig: new KubeConfig(), path: '/api/v1/nodes', backoff: { initialMs: 1000, maxMs: 1000 } });
  const [error] = (await Promise.all([once(informer, 'error'), informer.start()]))[0] as [Error];
  informer.stop();
  assert.match(error.message, /no current cluster/);
});
