import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { LOCAL_ISS, ScriptedPeer } from './scripted-peer.js';

/** A connection with data in flight whose peer acknowledges a little and shrinks its window to zero. */
function shrunkWindow(): { peer: ScriptedPeer; una: number; closed: string[] } {
  const peer = new ScriptedPeer({ maxRetransmissions: 5, maxRtoMs: 10_000 });
  const closed: string[] = [];
  peer.conn.events = { closed: (reason) => closed.push(reason) };
  peer.conn.write(Buffer.alloc(100_000, 1));
  const sent = peer.transmit(10);
  assert.ok(sent.length > 2);
  const una = LOCAL_ISS + 1 + sent[0].payload.length;
  peer.send(20, una, 0);
  peer.transmit(20);
  return { peer, una, closed };
}

test('RFC 9293 §3.8.6.1: a zero window with data in flight is probed while the peer answers, never timed out', () => {
  const { peer, una, closed } = shrunkWindow();
  const a = peer.conn;
  let now = 20;
  let probes = 0;
  // Every timeout resends into the closed window; the peer drops the data and answers with its window (zero).
  while (now < 3_600_000 && probes < 40) {
    now = a.pollAt();
    const out: TcpRepr[] = peer.transmit(now);
    if (out.length === 0) continue;
    probes++;
    peer.send(now + 5, una, 0);
    peer.transmit(now + 5);
  }
  assert.deepEqual(closed, [], `closed after ${probes} answered probes`);
  assert.equal(a.state, 'ESTABLISHED');
  assert.ok(probes >= 20, `probes: ${probes}`);
  // The window opens: the data the peer dropped goes again at the next timeout at the latest.
  peer.send(now + 10, una, 1000);
  const resumed = [...peer.transmit(now + 10), ...peer.transmit(a.pollAt())];
  assert.ok(resumed.some((s) => s.seq === una && s.payload.length > 0), 'data resumes from SND.UNA');
  assert.equal(a.state, 'ESTABLISHED');
});

test('RFC 9293 §3.8.6.1: a zero-window peer that stops answering still times out', () => {
  const { peer, closed } = shrunkWindow();
  const a = peer.conn;
  for (let i = 0; i < 100 && closed.length === 0; i++) peer.transmit(a.pollAt());
  assert.deepEqual(closed, ['timeout']);
});
