// TunnelClient's heartbeat against a hand-written HTTP/2 peer (a raw TCP server: the preface's SETTINGS, then PING
// frames of its own, never an answer to the client's), standing in for a manager whose PING answers wait behind a
// loaded, lossy connection's data: a connection that still receives is kept, one that went silent is given up.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TunnelClient, type TunnelError } from '../../src/tunnel/tunnel-client.js';

/** An HTTP/2 frame header (RFC 9113 §4.1) and its payload, on stream 0. */
function frame(type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  return Buffer.concat([header, payload]);
}
const SETTINGS = 0x4;
const PING = 0x6;

test('a connection whose PING answers are late but whose bytes keep arriving is kept; one that falls silent is given up (hand-written HTTP/2 peer)', async (t) => {
  let talking = true;
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(Buffer.concat([frame(SETTINGS, 0), frame(SETTINGS, 0x1)]));
    const chatter = setInterval(() => {
      if (talking && !socket.destroyed) socket.write(frame(PING, 0, Buffer.alloc(8)));
    }, 50);
    socket.once('close', () => clearInterval(chatter));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const client = await TunnelClient.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { heartbeat: { intervalMs: 50, timeoutMs: 300 } });
  t.after(() => client.close());
  const seen: { lost?: TunnelError } = {};
  client.once('disconnected', (error) => (seen.lost = error));

  await sleep(1_000);
  assert.equal(seen.lost, undefined, 'no PING was answered for 1 s, yet bytes kept coming');

  talking = false;
  const silentAt = performance.now();
  while (seen.lost === undefined && performance.now() - silentAt < 2_000) await sleep(20);
  assert.match((seen.lost as TunnelError | undefined)?.message ?? 'kept', /heartbeat failed: The traffic manager did not answer a ping within 300 ms/);
  assert.ok(performance.now() - silentAt < 800, `given up ${Math.round(performance.now() - silentAt)} ms after the last byte`);
});
