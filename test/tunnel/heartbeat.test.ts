// TunnelClient's heartbeat against a hand-written HTTP/2 peer that never answers the client's PINGs but keeps
// sending its own: a connection that still receives is kept, one that went silent is given up.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TunnelClient, type TunnelError } from '../../src/tunnel/tunnel-client.js';
import { unansweringPeer } from './unanswering-peer.js';

test('a connection whose PING answers are late but whose bytes keep arriving is kept; one that falls silent is given up (hand-written HTTP/2 peer)', async (t) => {
  const peer = await unansweringPeer();
  t.after(() => peer.close());
  const client = await TunnelClient.connect(`http://127.0.0.1:${peer.port}`, { heartbeat: { intervalMs: 50, timeoutMs: 300 } });
  t.after(() => client.close());
  const seen: { lost?: TunnelError } = {};
  client.once('disconnected', (error) => (seen.lost = error));

  await sleep(1_000);
  assert.equal(seen.lost, undefined, 'no PING was answered for 1 s, yet bytes kept coming');

  peer.silence();
  const silentAt = performance.now();
  while (seen.lost === undefined && performance.now() - silentAt < 2_000) await sleep(20);
  assert.match((seen.lost as TunnelError | undefined)?.message ?? 'kept', /heartbeat failed: The traffic manager did not answer a ping within 300 ms/);
  assert.ok(performance.now() - silentAt < 800, `given up ${Math.round(performance.now() - silentAt)} ms after the last byte`);
});
