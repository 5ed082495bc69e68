// serveDial, the user daemon's handling of one announced intercepted connection, with a real TunnelClient against
// a test double for the manager's stream side (test/tunnel/intercept-double.ts) and real local servers on loopback.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { InterceptDialSchema } from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { CapsuleDecoder, encodeDatagramCapsule } from '../../src/tunnel/capsule.js';
import { serveDial } from '../../src/userd/intercept-dials.js';
import { withInterceptDouble } from '../tunnel/intercept-double.js';
import { closedPort, roundTrip, startTcpEcho, startUdpEcho } from '../tunnel/tunnel-fixture.js';

const target = (localPort: number) => ({ localPort, workload: 'default/echo' });
const dial = (id: string, init: { protocol?: string; mirror?: boolean } = {}) =>
  create(InterceptDialSchema, { id, interceptId: 'i1', protocol: init.protocol ?? 'TCP', source: '10.244.0.9:41000', pod: 'echo-1', containerPort: 8080, mirror: init.mirror ?? false });

test('serveDial (test double for the manager): nothing listens locally → the dial is refused with a message naming the port', async () => {
  const port = await closedPort();
  await withInterceptDouble(async (double, client) => {
    await serveDial(client, dial('d1'), target(port), silentLogger);
    assert.equal(double.accepted.length, 0);
    const [refusal] = double.refused;
    assert.equal(refusal?.headers[':path'], '/intercept/d1');
    assert.equal(refusal?.headers['kubetun-error'], 'refused');
    assert.equal(refusal?.headers['kubetun-error-message'], `nothing listens on localhost:${port} (intercept of default/echo)`);
  });
});

test('serveDial (test double for the manager): a local server → bytes flow both ways and each end is passed on', async () => {
  const echo = await startTcpEcho();
  try {
    await withInterceptDouble(async (double, client) => {
      await serveDial(client, dial('d2'), target(echo.port), silentLogger);
      const agent = double.accepted[0]!.stream;
      const payload = Buffer.alloc(1 << 20, 7);
      const back = await roundTrip(agent, payload);
      assert.ok(back.equals(payload), 'the echo came back whole after the cluster side ended');
    });
  } finally {
    await echo.close();
  }
});

test('serveDial (test double for the manager): a server on ::1 only is reached too', async (t) => {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '::1', resolve));
  } catch {
    t.skip('no IPv6 loopback here');
    return;
  }
  try {
    await withInterceptDouble(async (double, client) => {
      await serveDial(client, dial('d3'), target((server.address() as net.AddressInfo).port), silentLogger);
      const back = await roundTrip(double.accepted[0]!.stream, Buffer.from('over v6'));
      assert.equal(back.toString(), 'over v6');
    });
  } finally {
    server.close();
  }
});

test('serveDial (test double for the manager): a mirror copy reaches the local server, whose answer is thrown away', async () => {
  const seen: Buffer[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => seen.push(chunk));
    socket.on('end', () => socket.end('an answer nobody may see'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await withInterceptDouble(async (double, client) => {
      await serveDial(client, dial('d4', { mirror: true }), target((server.address() as net.AddressInfo).port), silentLogger);
      const back = await roundTrip(double.accepted[0]!.stream, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      assert.equal(back.length, 0);
      assert.equal(Buffer.concat(seen).toString(), 'GET / HTTP/1.1\r\n\r\n');
    });
  } finally {
    server.close();
  }
});

test('serveDial (test double for the manager): UDP datagrams go to the local port and its answers come back', async () => {
  const echo = await startUdpEcho();
  try {
    await withInterceptDouble(async (double, client) => {
      await serveDial(client, dial('d5', { protocol: 'UDP' }), target(echo.port), silentLogger);
      const agent = double.accepted[0]!.stream;
      const answers: string[] = [];
      const decoder = new CapsuleDecoder((payload) => answers.push(payload.toString()));
      agent.on('data', (chunk: Buffer) => decoder.push(chunk));
      agent.write(encodeDatagramCapsule(Buffer.from('dns?')));
      while (answers.length === 0) await once(agent, 'data');
      assert.deepEqual(answers, ['dns?']);
    });
  } finally {
    echo.close();
  }
});

test('serveDial (test double for the manager): a local server that resets → the cluster side is reset, not ended', async () => {
  const server = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await withInterceptDouble(async (double, client) => {
      await serveDial(client, dial('d6'), target((server.address() as net.AddressInfo).port), silentLogger);
      const agent = double.accepted[0]!.stream;
      agent.resume();
      agent.write('hello');
      await new Promise((resolve) => agent.once('close', resolve));
      assert.equal(agent.rstCode, 0x0a, 'CONNECT_ERROR, RFC 9113 §8.5');
    });
  } finally {
    server.close();
  }
});
