// The user daemon's manager socket with a mock dial (TCP to an in-process traffic manager on 127.0.0.1 instead
// of a port-forward): TunnelClient over `unix:`, the heartbeat noticing a silent path, a failed dial reported.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { silentLogger } from '../../src/log/logger.js';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { ManagerForwarder } from '../../src/userd/manager-forwarder.js';
import { startTcpEcho, startTunnel } from '../tunnel/tunnel-fixture.js';

/** A stream to 127.0.0.1:port that, once frozen, drops everything both ways without closing: a dead path. */
async function freezableStream(port: number): Promise<{ stream: Duplex; freeze(): void }> {
  const upstream = net.connect(port, '127.0.0.1');
  await once(upstream, 'connect');
  let frozen = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (!frozen) upstream.write(chunk);
      callback();
    },
    final(callback) {
      upstream.end();
      callback();
    },
    destroy(error, callback) {
      upstream.destroy();
      callback(error);
    },
  });
  upstream.on('data', (chunk: Buffer) => {
    if (!frozen) stream.push(chunk);
  });
  upstream.on('end', () => stream.push(null));
  upstream.on('error', (error) => stream.destroy(error));
  return { stream, freeze: () => (frozen = true) };
}

function tempSocket(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-forwarder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'manager-forward.sock');
}

test('TunnelClient over the forwarder socket (mock dial: TCP to a local manager) arrives and carries a TCP flow', async (t) => {
  const tunnel = await startTunnel();
  const echo = await startTcpEcho();
  const port = Number(new URL(tunnel.manager.url).port);
  let dials = 0;
  const forwarder = await ManagerForwarder.listen(
    tempSocket(t),
    async () => {
      dials++;
      return (await freezableStream(port)).stream;
    },
    silentLogger,
  );
  try {
    assert.equal(statSync(forwarder.path).mode & 0o777, 0o600, 'only the user may use its port-forward');
    assert.match(forwarder.url, /^unix:\//);
    const client = await TunnelClient.connect(forwarder.url, { heartbeat: { intervalMs: 100, timeoutMs: 300 } });
    try {
      const session = await client.manager.arriveAsClient({ name: 'test', namespace: 'default' });
      client.sessionId = session.id;
      const flow = await client.openTcp('127.0.0.1', echo.port);
      flow.end('hello over a unix socket');
      const chunks: Buffer[] = [];
      for await (const chunk of flow) chunks.push(chunk as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'hello over a unix socket');
      // A healthy idle connection survives many heartbeats.
      let lost = false;
      client.once('disconnected', () => (lost = true));
      await sleep(1_000);
      assert.equal(lost, false);
      assert.equal(client.closed, false);
      assert.equal(dials, 1);
      assert.equal(forwarder.lastError, null);
    } finally {
      client.close();
    }
  } finally {
    forwarder.close();
    await echo.close();
    await tunnel.close();
  }
});

test('the default heartbeat notices a silent path within 5 s, and a new connection dials again (mock dial)', async (t) => {
  const tunnel = await startTunnel();
  const port = Number(new URL(tunnel.manager.url).port);
  const paths: { freeze(): void }[] = [];
  const forwarder = await ManagerForwarder.listen(
    tempSocket(t),
    async () => {
      const path = await freezableStream(port);
      paths.push(path);
      return path.stream;
    },
    silentLogger,
  );
  try {
    const first = await TunnelClient.connect(forwarder.url);
    await first.manager.version({});
    const lost = once(first, 'disconnected') as Promise<[TunnelError]>;
    const frozenAt = Date.now();
    paths[0]!.freeze();
    const [error] = await lost;
    const took = Date.now() - frozenAt;
    assert.ok(took <= 5_000, `noticed after ${took} ms`);
    assert.ok(took >= 2_500, `noticed after ${took} ms, before the 3 s ping timeout could pass`);
    assert.match(error.message, /heartbeat failed: The traffic manager did not answer a ping within 3000 ms/);
    assert.equal(first.closed, true);

    const second = await TunnelClient.connect(forwarder.url);
    try {
      assert.equal((await second.manager.version({})).version, '0.0.0-test');
      assert.equal(paths.length, 2, 'each connection gets its own port-forward');
    } finally {
      second.close();
    }
  } finally {
    forwarder.close();
    await tunnel.close();
  }
});

test('a failed dial (mock) closes the connection at once and is kept as lastError', async (t) => {
  const forwarder = await ManagerForwarder.listen(
    tempSocket(t),
    () => Promise.reject(new Error('the traffic manager pod traffic-manager-1 is not ready: it is Pending')),
    silentLogger,
  );
  try {
    const started = Date.now();
    await assert.rejects(TunnelClient.connect(forwarder.url, { connectTimeoutMs: 5_000 }), (error: unknown) => {
      assert.ok(error instanceof TunnelError);
      assert.match(error.message, /^Cannot reach the traffic manager at unix:\//);
      return true;
    });
    assert.ok(Date.now() - started < 2_000, 'the closed socket is noticed without waiting for the timeout');
    assert.match(forwarder.lastError?.message ?? '', /traffic-manager-1 is not ready: it is Pending/);
  } finally {
    forwarder.close();
  }
});

test('TunnelClient.connect rejects a URL that is neither http(s) nor unix', async () => {
  await assert.rejects(TunnelClient.connect('ftp://example'), /must start with http:\/\/, https:\/\/ or unix:\//);
  await assert.rejects(TunnelClient.connect('not a url'), /must start with http:\/\/, https:\/\/ or unix:\//);
});
