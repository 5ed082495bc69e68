import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { closedPort, roundTrip, startTcpEcho, startTunnel, type TunnelFixture } from './tunnel-fixture.js';

let tunnel: TunnelFixture;
let echo: Awaited<ReturnType<typeof startTcpEcho>>;

before(async () => {
  tunnel = await startTunnel();
  echo = await startTcpEcho();
});

after(async () => {
  await tunnel.close();
  await echo.close();
});

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

test('a few MiB go through a CONNECT stream to an echo server and come back unchanged', async () => {
  const data = randomBytes(6 * 1024 * 1024);
  const stream = await tunnel.client.openTcp('127.0.0.1', echo.port);
  const back = await roundTrip(stream, data);
  assert.equal(back.length, data.length);
  assert.equal(sha256(back), sha256(data));
});

test('200 concurrent streams each echo their own bytes', async () => {
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const data = randomBytes(10_000 + i * 97);
      const stream = await tunnel.client.openTcp('127.0.0.1', echo.port);
      return sha256(await roundTrip(stream, data)) === sha256(data);
    }),
  );
  assert.equal(results.filter(Boolean).length, 200);
});

test('half-close from the client: the server still sends after our END_STREAM', async () => {
  // A server that answers only after the client has finished sending.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stream = await tunnel.client.openTcp('127.0.0.1', port);
  const back = await roundTrip(stream, Buffer.alloc(12345));
  assert.equal(back.toString(), 'got 12345 bytes');
  server.close();
});

test('half-close from the server: its FIN arrives as END_STREAM while we can still send', async () => {
  const received: Buffer[] = [];
  let serverGotEnd!: () => void;
  const serverEnded = new Promise<void>((resolve) => (serverGotEnd = resolve));
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.end('bye');
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('end', () => serverGotEnd());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stream = await tunnel.client.openTcp('127.0.0.1', port);
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await once(stream, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'bye');
  stream.end('still here');
  await serverEnded;
  assert.equal(Buffer.concat(received).toString(), 'still here');
  server.close();
});

test('a closed port is REFUSED, quickly', async () => {
  const port = await closedPort();
  const started = Date.now();
  await assert.rejects(tunnel.client.openTcp('127.0.0.1', port), (error: unknown) => {
    assert.ok(error instanceof TunnelError);
    assert.equal(error.code, 'REFUSED');
    return true;
  });
  assert.ok(Date.now() - started < 500, 'refusal took more than 500 ms');
});

test('a target outside the cluster and allowed CIDRs is FORBIDDEN', async () => {
  await assert.rejects(tunnel.client.openTcp('192.0.2.1', 80), (error: unknown) => {
    assert.ok(error instanceof TunnelError);
    assert.equal(error.code, 'FORBIDDEN');
    assert.match(error.message, /--allow/);
    return true;
  });
});

test('a stream without a session is refused with SESSION', async () => {
  const anonymous = await TunnelClient.connect(tunnel.manager.url);
  try {
    await assert.rejects(anonymous.openTcp('127.0.0.1', echo.port), (error: unknown) => {
      assert.ok(error instanceof TunnelError);
      assert.equal(error.code, 'SESSION');
      return true;
    });
    anonymous.sessionId = 'no-such-session';
    await assert.rejects(anonymous.openTcp('127.0.0.1', echo.port), { code: 'SESSION' });
  } finally {
    anonymous.close();
  }
});

test('ping measures a round trip on the connection', async () => {
  const ms = await tunnel.client.ping(1000);
  assert.ok(ms >= 0 && ms < 1000);
});

test('IPv6 targets work through a bracketed authority', async () => {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '::1', resolve);
    });
  } catch {
    return; // no IPv6 loopback on this machine
  }
  const port = (server.address() as net.AddressInfo).port;
  const stream = await tunnel.client.openTcp('::1', port);
  assert.equal((await roundTrip(stream, Buffer.from('six'))).toString(), 'six');
  server.close();
});

test('a reset from the client resets the destination connection', async () => {
  let serverSaw!: (what: string) => void;
  const outcome = new Promise<string>((resolve) => (serverSaw = resolve));
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', (error: NodeJS.ErrnoException) => serverSaw(error.code ?? 'error'));
    socket.on('end', () => serverSaw('end'));
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stream = await tunnel.client.openTcp('127.0.0.1', port);
  stream.on('error', () => undefined);
  stream.write('some bytes');
  await new Promise((resolve) => setTimeout(resolve, 20));
  stream.destroy();
  assert.equal(await outcome, 'ECONNRESET');
  server.close();
});

test('a reset from the destination resets the stream (RST_STREAM CONNECT_ERROR)', async () => {
  const server = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stream = (await tunnel.client.openTcp('127.0.0.1', port)) as http2.ClientHttp2Stream;
  stream.resume();
  stream.write('trigger');
  const [error] = (await once(stream, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ERR_HTTP2_STREAM_ERROR');
  assert.equal(stream.rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
  server.close();
});
