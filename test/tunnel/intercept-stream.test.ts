// TunnelClient.openInterceptStream / openInterceptUdp / refuseDial against a real node:http2 server (a test double
// for the manager's stream side, test/tunnel/intercept-double.ts): the headers the contract names, bytes both ways,
// a failure status becoming a TunnelError, a refusal ended at once.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { CapsuleDecoder, encodeDatagramCapsule } from '../../src/tunnel/capsule.js';
import { TunnelError } from '../../src/tunnel/tunnel-client.js';
import { withInterceptDouble } from './intercept-double.js';

test('openInterceptStream (test double for the manager): extended CONNECT with the dial path, session and bearer; bytes both ways', async () => {
  await withInterceptDouble(async (double, client) => {
    const stream = await client.openInterceptStream('dial_42');
    const { headers, stream: agent } = double.accepted[0]!;
    assert.equal(headers[':method'], 'CONNECT');
    assert.equal(headers[':protocol'], 'kubetun-intercept');
    assert.equal(headers[':path'], '/intercept/dial_42');
    assert.equal(headers['kubetun-session'], 'sess-1');
    assert.equal(headers.authorization, 'Bearer tok');
    stream.end('from the laptop');
    agent.end('from the cluster');
    const [up, down] = await Promise.all([readAll(agent), readAll(stream)]);
    assert.equal(up, 'from the laptop');
    assert.equal(down, 'from the cluster');
  }, { sessionId: 'sess-1', bearerToken: 'tok' });
});

test('openInterceptStream (test double for the manager): a failure status becomes a TunnelError with the manager\'s reason', async () => {
  await withInterceptDouble(async (_double, client) => {
    await assert.rejects(client.openInterceptStream('late'), (error: unknown) => {
      assert.ok(error instanceof TunnelError);
      assert.equal(error.code, 'TIMEOUT');
      assert.match(error.message, /the dial was claimed too late/);
      return true;
    });
  }, { sessionId: 's' }, 504, { 'kubetun-error': 'timeout', 'kubetun-error-message': 'the dial was claimed too late' });
});

test('refuseDial (test double for the manager): the reason and message in headers, the stream ended with them', async () => {
  await withInterceptDouble(async (double, client) => {
    await client.refuseDial('d1', 'refused', 'nothing listens on localhost:8080\n(intercept of default/echo)');
    const [refusal] = double.refused;
    assert.ok(refusal !== undefined);
    assert.equal(refusal.headers[':protocol'], 'kubetun-intercept');
    assert.equal(refusal.headers[':path'], '/intercept/d1');
    assert.equal(refusal.headers['kubetun-error'], 'refused');
    assert.equal(refusal.headers['kubetun-error-message'], 'nothing listens on localhost:8080 (intercept of default/echo)');
    assert.equal(refusal.endedAtOnce, true);
    assert.equal(double.accepted.length, 0);
  }, { sessionId: 's' });
});

test('openInterceptUdp (test double for the manager): datagram capsules both ways', async () => {
  await withInterceptDouble(async (double, client) => {
    const udp = await client.openInterceptUdp('u1');
    const { headers, stream: agent } = double.accepted[0]!;
    assert.equal(headers['capsule-protocol'], '?1');
    const received: string[] = [];
    const decoder = new CapsuleDecoder((p) => received.push(p.toString()));
    agent.on('data', (chunk: Buffer) => decoder.push(chunk));
    udp.send(Buffer.from('ping'));
    agent.write(encodeDatagramCapsule(Buffer.from('pong')));
    const [datagram] = (await once(udp, 'datagram')) as [Buffer];
    assert.equal(datagram.toString(), 'pong');
    while (received.length === 0) await once(agent, 'data');
    assert.deepEqual(received, ['ping']);
    udp.close();
  }, { sessionId: 's' });
});

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}
