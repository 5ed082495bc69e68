import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOCAL_ISS, ScriptedPeer } from './scripted-peer.js';

const MSS = 1448;

test('RFC 8985 §7: when the ACKs of a flight\'s tail are lost, a loss probe resends the last segment after about two RTTs, not an RTO', () => {
  const peer = new ScriptedPeer();
  const a = peer.conn;
  a.write(Buffer.alloc(8 * MSS, 1));
  const flight = peer.transmit(10);
  assert.equal(flight.reduce((n, s) => n + s.payload.length, 0), 8 * MSS);
  const end = LOCAL_ISS + 1 + 8 * MSS;
  // The first half is acknowledged; every ACK for the rest is lost.
  peer.send(20, LOCAL_ISS + 1 + 4 * MSS, 65535);
  peer.transmit(20);
  const at = a.pollAt();
  assert.ok(at > 20 && at < 60, `next deadline at ${at} ms (an RTO is at least 200 ms away)`);
  const out = peer.transmit(at);
  assert.equal(out.length, 1, 'one probe');
  assert.equal(out[0].seq + out[0].payload.length, end, 'the probe is the last segment sent');
  // Its ACK acknowledges everything: nothing is left to retransmit.
  peer.send(at + 10, end, 65535);
  assert.equal(a.sendBuffered, 0);
  assert.equal(a.pollAt(), Number.POSITIVE_INFINITY);
});

test('RFC 8985 §7.3: with unsent data the peer\'s window takes, the probe is a new segment beyond the congestion window', () => {
  const peer = new ScriptedPeer();
  const a = peer.conn;
  a.write(Buffer.alloc(40 * MSS, 1));
  const sent = peer.transmit(10).reduce((n, s) => n + s.payload.length, 0);
  assert.ok(sent < 40 * MSS, 'the congestion window holds data back');
  peer.send(20, LOCAL_ISS + 1 + 2 * MSS, 65535);
  const more = peer.transmit(20).reduce((n, s) => n + s.payload.length, 0);
  const at = a.pollAt();
  assert.ok(at > 20 && at < 60, `next deadline at ${at} ms`);
  const out = peer.transmit(at);
  assert.equal(out.length, 1, 'one probe');
  assert.equal(out[0].seq, LOCAL_ISS + 1 + sent + more, 'new data at SND.MAX');
});
