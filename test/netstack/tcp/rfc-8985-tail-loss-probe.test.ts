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

test('RFC 8985 §7.3: with unsent data the peer\'s window takes, the probe still resends the last segment sent (a Linux receiver ACKs a duplicate at once, a lone new segment only after its delayed-ACK timer)', () => {
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
  const sndMax = LOCAL_ISS + 1 + sent + more;
  assert.equal(out[0].seq + out[0].payload.length, sndMax, 'the probe ends at SND.MAX');
  assert.equal(out[0].payload.length, MSS, 'a full segment');
});

test('probe in fast recovery (as RFC 9002 §6.2): a lost retransmission, or its one ACK, is probed by resending SND.UNA after about two RTTs, then once more at twice that, before the RTO', () => {
  const peer = new ScriptedPeer();
  const a = peer.conn;
  a.write(Buffer.alloc(40 * MSS, 1));
  const flight = peer.transmit(10);
  assert.ok(flight.length >= 5);
  const una = LOCAL_ISS + 1;
  // Segment 1 is lost: the peer SACKs 2-4, recovery resends segment 1 at once.
  peer.send(20, una, 65535, { sack: [[una + MSS, una + 4 * MSS]] });
  const resent = peer.transmit(20);
  assert.equal(resent[0]?.seq, una, 'the fast retransmission');
  // Nothing more is heard.
  const first = a.pollAt();
  assert.ok(first > 20 && first < 30, `first probe at ${first} ms (the RTO is 200 ms or more away)`);
  const probe1 = peer.transmit(first);
  assert.equal(probe1.length, 1);
  assert.equal(probe1[0].seq, una, 'the probe resends SND.UNA');
  const second = a.pollAt();
  assert.ok(second - first > first - 20 && second - first < 3 * (first - 20), `second probe ${second - first} ms after the first`);
  const probe2 = peer.transmit(second);
  assert.equal(probe2[0]?.seq, una);
  assert.ok(a.pollAt() - second >= 200, 'then only the retransmission timer');
  // The probe's ACK (with the rest SACKed) ends the wait: recovery goes on.
  peer.send(second + 1, una + 4 * MSS, 65535);
  assert.ok(peer.transmit(second + 1).length > 0);
});

test('RTT on the local clock: round trips of 0.3 ms give a smoothed RTT of about 0.3 ms (the timestamp echo counts whole ms and reads 0), which sets the probe timeout', () => {
  const peer = new ScriptedPeer();
  const a = peer.conn;
  let t = 10;
  let acked = LOCAL_ISS + 1;
  for (let i = 0; i < 40; i++, t += 1) {
    a.write(Buffer.alloc(MSS, 1));
    const [seg] = peer.transmit(t);
    acked = seg.seq + seg.payload.length;
    peer.send(t + 0.3, acked, 65535);
  }
  a.write(Buffer.alloc(MSS, 1));
  peer.transmit(t);
  // Two segments in flight after this one's ACK is lost: 2 × SRTT + 2 ms of timer slack.
  a.write(Buffer.alloc(MSS, 1));
  peer.transmit(t);
  const timeout = a.pollAt() - t;
  assert.ok(timeout > 2.4 && timeout < 2.9, `probe timeout ${timeout.toFixed(3)} ms`);
});
