import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tcpHeaderLength } from '../../../src/netstack/wire/tcp.js';
import { LOCAL_ISS, ScriptedPeer } from './scripted-peer.js';

const NEW_PATH_MSS = 1300;

test('RFC 1191 §6.5: a lower path MTU resends the data in flight at once in the smaller size, without a congestion-window reduction', () => {
  const peer = new ScriptedPeer({ mss: 1460, sendSegmentMax: 1460 });
  const a = peer.conn;
  a.write(Buffer.alloc(200_000, 1));
  const first = peer.transmit(10);
  // Two segments arrive, the rest is dropped by the smaller hop (which says so in ICMP).
  const una = LOCAL_ISS + 1 + first[0].payload.length + first[1].payload.length;
  peer.send(20, una, 1000);
  const more = peer.transmit(20);
  const sndMax = Math.max(...[...first, ...more].map((s) => s.seq + s.payload.length));
  const inFlight = sndMax - una;
  assert.ok(inFlight > 10 * 1448, `in flight: ${inFlight}`);

  a.pathMtuChanged(NEW_PATH_MSS);
  assert.ok(a.pollAt() <= 25, 'the resend is due now, not at the retransmission timeout');
  const resent = peer.transmit(25);
  assert.ok(resent.length > 0, 'something is resent at once');
  assert.equal(resent[0].seq, una, 'from SND.UNA');
  let covered = una;
  for (const s of resent) {
    assert.ok(s.payload.length + tcpHeaderLength(s.options) - 20 <= NEW_PATH_MSS, `a ${s.payload.length}-byte segment`);
    if (s.seq === covered) covered += s.payload.length;
  }
  // The window that held the flight still holds it, less a partial last segment (sender SWS avoidance).
  assert.ok(covered > sndMax - 1288, `resent at once: ${covered - una} of ${inFlight} bytes in flight; the window was not cut`);
});

test('RFC 1191 §6.5: a lower path MTU with nothing in flight changes only the segments to come', () => {
  const peer = new ScriptedPeer({ mss: 1460, sendSegmentMax: 1460 });
  const a = peer.conn;
  a.write(Buffer.alloc(3000, 1));
  const first = peer.transmit(10);
  assert.equal(first[0].payload.length, 1448);
  peer.send(20, LOCAL_ISS + 1 + 3000, 1000);
  assert.deepEqual(peer.transmit(20), []);
  a.pathMtuChanged(NEW_PATH_MSS);
  assert.equal(a.pollAt(), Number.POSITIVE_INFINITY, 'nothing to resend');
  assert.deepEqual(peer.transmit(25), []);
  a.write(Buffer.alloc(3000, 2));
  const next = peer.transmit(30);
  assert.deepEqual(next.map((s) => s.payload.length), [1288, 1288, 424]);
  assert.equal(a.effectiveMss, 1288);
});

test('RFC 1191 §3: an IPv4 path below 1280 bytes is followed (MSS 960 for a 1000-byte hop), and a forged tiny MTU stops at the 512-byte floor', () => {
  const peer = new ScriptedPeer({ mss: 1460, sendSegmentMax: 1460 });
  const a = peer.conn;
  a.pathMtuChanged(1000 - 40);
  assert.equal(a.effectiveMss, 960 - 12);
  a.pathMtuChanged(28);
  assert.equal(a.effectiveMss, 512 - 12);
});
