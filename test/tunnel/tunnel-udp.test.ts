import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { TunnelError, type UdpTunnel } from '../../src/tunnel/tunnel-client.js';
import { startTunnel, startUdpEcho, type TunnelFixture } from './tunnel-fixture.js';

let tunnel: TunnelFixture;
let echo: Awaited<ReturnType<typeof startUdpEcho>>;

before(async () => {
  tunnel = await startTunnel({ udpIdleMs: 300 });
  echo = await startUdpEcho();
});

after(async () => {
  echo.close();
  await tunnel.close();
});

function nextDatagram(udp: UdpTunnel): Promise<Buffer> {
  return once(udp, 'datagram').then(([payload]) => payload as Buffer);
}

test('datagrams from 1 byte to 60 KiB echo through connect-udp unchanged', async () => {
  const udp = await tunnel.client.openUdp('127.0.0.1', echo.port);
  for (const size of [1, 100, 1400, 9000, 32 * 1024, 60 * 1024]) {
    const payload = randomBytes(size);
    const reply = nextDatagram(udp);
    assert.ok(udp.send(payload));
    assert.deepEqual(await reply, payload);
  }
  udp.close();
});

test('a burst of datagrams keeps their boundaries', async () => {
  const udp = await tunnel.client.openUdp('127.0.0.1', echo.port);
  const sizes = Array.from({ length: 50 }, (_, i) => 1 + i * 37);
  const got: number[] = [];
  const all = new Promise<void>((resolve) =>
    udp.on('datagram', (payload) => {
      assert.equal(payload[0], payload.length & 0xff);
      got.push(payload.length);
      if (got.length === sizes.length) resolve();
    }),
  );
  for (const size of sizes) udp.send(Buffer.alloc(size, size & 0xff));
  await all;
  assert.deepEqual([...got].sort((a, b) => a - b), sizes);
  udp.close();
});

test('an idle UDP flow is closed by the manager', async () => {
  const udp = await tunnel.client.openUdp('127.0.0.1', echo.port);
  const started = Date.now();
  await once(udp, 'close');
  assert.ok(Date.now() - started >= 250, 'closed before the idle timeout');
  assert.equal(udp.send(Buffer.from('late')), false);
});

test('UDP to a target outside the allowed CIDRs is FORBIDDEN', async () => {
  await assert.rejects(tunnel.client.openUdp('192.0.2.1', 53), (error: unknown) => {
    assert.ok(error instanceof TunnelError);
    assert.equal(error.code, 'FORBIDDEN');
    return true;
  });
});
