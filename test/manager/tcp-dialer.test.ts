import assert from 'node:assert/strict';
import * as net from 'node:net';
import { test } from 'node:test';
import { DialError, createTcpDialer } from '../../src/manager/tcp-dialer.js';
import { TunnelError } from '../../src/tunnel/tunnel-client.js';
import { closedPort, startTunnel } from '../tunnel/tunnel-fixture.js';

test('timeout (injected socket that never connects): the dialer gives up after its deadline', async () => {
  let created: net.Socket | undefined;
  const dial = createTcpDialer({
    timeoutMs: 100,
    // An unconnected socket: no SYN leaves the machine, and no 'connect' ever comes.
    createConnection: () => (created = new net.Socket()),
  });
  const started = Date.now();
  await assert.rejects(dial('10.96.0.1', 80), (error: unknown) => {
    assert.ok(error instanceof DialError);
    assert.equal(error.reason, 'timeout');
    return true;
  });
  assert.ok(Date.now() - started >= 95);
  assert.ok(created?.destroyed, 'the abandoned socket is destroyed');
});

test('a closed loopback port is refused', async () => {
  const dial = createTcpDialer({ timeoutMs: 1000 });
  await assert.rejects(dial('127.0.0.1', await closedPort()), { name: 'DialError', reason: 'refused' });
});

test('timeout (injected dialer whose sockets never connect): the client gets TIMEOUT through the tunnel', async () => {
  const tunnel = await startTunnel({
    dialTcp: createTcpDialer({ timeoutMs: 100, createConnection: () => new net.Socket() }),
  });
  try {
    await assert.rejects(tunnel.client.openTcp('10.96.0.1', 80), (error: unknown) => {
      assert.ok(error instanceof TunnelError);
      assert.equal(error.code, 'TIMEOUT');
      assert.match(error.message, /timed out after 100 ms/);
      return true;
    });
  } finally {
    await tunnel.close();
  }
});
