import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { closedPort, startTcpEcho, startTunnel } from './tunnel-fixture.js';

const isNotFound = (error: unknown): boolean => error instanceof ConnectError && error.code === Code.NotFound;

test('arrive, remain and depart; the control API shares the tunnel connection', async () => {
  const tunnel = await startTunnel();
  try {
    const { client, manager } = tunnel;
    assert.equal(manager.sessions.size, 1);
    await client.manager.remain({ id: client.sessionId! });
    assert.equal((await client.manager.version({})).version, '0.0.0-test');
    await client.openTcp('127.0.0.1', 1).catch(() => undefined);
    assert.equal(manager.connectionCount, 1, 'control calls and tunnel streams use one HTTP/2 connection');
    await client.manager.depart({ id: client.sessionId! });
    assert.equal(manager.sessions.size, 0);
    await assert.rejects(client.manager.remain({ id: client.sessionId! }), isNotFound);
    await assert.rejects(client.openTcp('127.0.0.1', 1), { code: 'SESSION' });
  } finally {
    await tunnel.close();
  }
});

test('a session not kept alive expires after its TTL; one kept alive does not', async () => {
  const tunnel = await startTunnel({ sessionTtlMs: 200 });
  try {
    const { client } = tunnel;
    const kept = client.sessionId!;
    const idle = (await client.manager.arriveAsClient({ name: 'idle', namespace: 'default' })).id;
    for (let i = 0; i < 5; i++) {
      await sleep(80);
      await client.manager.remain({ id: kept });
    }
    await assert.rejects(client.manager.remain({ id: idle }), isNotFound);
    await client.manager.remain({ id: kept });
  } finally {
    await tunnel.close();
  }
});

test('WatchClusterInfo sends the facts at once, then every update, with the namespace search path', async () => {
  const tunnel = await startTunnel({}, 'shop');
  try {
    const { client, manager } = tunnel;
    const abort = new AbortController();
    const stream = client.manager.watchClusterInfo({ id: client.sessionId! }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const first = (await iterator.next()).value!;
    assert.deepEqual(first.podCidrs, ['10.244.0.0/16']);
    assert.deepEqual(first.serviceCidrs, ['10.96.0.0/12']);
    assert.deepEqual(first.dns?.searchPath, ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    assert.equal(first.version, '0.0.0-test');

    manager.cluster.update({ podCidrs: [parsePrefix('10.244.0.0/16'), parsePrefix('10.245.0.0/16')] });
    const second = (await iterator.next()).value!;
    assert.deepEqual(second.podCidrs, ['10.244.0.0/16', '10.245.0.0/16']);
    assert.ok(second.revision > first.revision);

    manager.cluster.update({ dns: { ip: '10.96.0.10', port: 53 } });
    const third = (await iterator.next()).value!;
    assert.equal(third.dns?.serverIp, '10.96.0.10');
    abort.abort();
    await assert.rejects(iterator.next());
  } finally {
    await tunnel.close();
  }
});

test('WatchClusterInfo ends when the session departs, and refuses an unknown session', async () => {
  const tunnel = await startTunnel();
  try {
    const { client } = tunnel;
    await assert.rejects(async () => {
      for await (const _ of client.manager.watchClusterInfo({ id: 'nope' })) assert.fail('no message expected');
    }, isNotFound);
    const messages: bigint[] = [];
    const watching = (async () => {
      for await (const info of client.manager.watchClusterInfo({ id: client.sessionId! })) messages.push(info.revision);
    })();
    await sleep(50);
    await client.manager.depart({ id: client.sessionId! });
    await watching;
    assert.equal(messages.length, 1);
  } finally {
    await tunnel.close();
  }
});

test('departing closes the session’s open tunnel streams', async () => {
  const tunnel = await startTunnel();
  const echo = await startTcpEcho();
  try {
    const { client } = tunnel;
    const stream = await client.openTcp('127.0.0.1', echo.port);
    stream.on('error', () => undefined);
    stream.resume();
    const closed = once(stream, 'close');
    await client.manager.depart({ id: client.sessionId! });
    await closed;
  } finally {
    await echo.close();
    await tunnel.close();
  }
});

test('the client reports disconnected when the manager goes away', async () => {
  const tunnel = await startTunnel();
  const disconnected = once(tunnel.client, 'disconnected');
  await tunnel.manager.close();
  const [error] = await disconnected;
  assert.equal((error as TunnelError).code, 'CONNECTION');
  await assert.rejects(tunnel.client.openTcp('127.0.0.1', 1), { code: 'CONNECTION' });
  tunnel.client.close();
});

test('connecting to a port where no manager listens is a CONNECTION error', async () => {
  const port = await closedPort();
  await assert.rejects(TunnelClient.connect(`http://127.0.0.1:${port}`), (error: unknown) => {
    assert.ok(error instanceof TunnelError);
    assert.equal(error.code, 'CONNECTION');
    assert.match(error.message, /Cannot reach the traffic manager/);
    return true;
  });
});
