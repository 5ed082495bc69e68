import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpFlags, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { LOCAL_ISS, PEER_ISS, ScriptedPeer } from './scripted-peer.js';

const { SYN, ACK, FIN } = TcpFlags;

/** A connection that closed first and sits in TIME-WAIT; the peer's FIN was its last segment. */
function inTimeWait(timestamps: boolean): ScriptedPeer {
  const peer = new ScriptedPeer({ timestamps, timeWaitMs: 60_000 });
  peer.conn.end();
  peer.transmit(10);
  peer.send(20, LOCAL_ISS + 2, 1000, { flags: ACK | FIN });
  peer.transmit(20);
  assert.equal(peer.conn.state, 'TIME-WAIT');
  return peer;
}

function newSyn(seq: number, tsValue?: number): TcpRepr {
  return {
    srcPort: 80,
    dstPort: 40000,
    seq,
    ack: 0,
    flags: SYN,
    window: 65535,
    urgent: 0,
    options: tsValue === undefined ? { mss: 1460 } : { mss: 1460, timestamp: { value: tsValue, echo: 0 } },
    payload: Buffer.alloc(0),
  };
}

test('RFC 6191 §2: in TIME-WAIT a SYN with a newer timestamp may start a new incarnation, an older one not', () => {
  const peer = inTimeWait(true);
  const a = peer.conn;
  const last = peer.tsValue;
  assert.equal(a.acceptsNewSyn(newSyn(PEER_ISS - 100_000, last + 1)), true, 'newer timestamp, even with an older ISN');
  assert.equal(a.acceptsNewSyn(newSyn(PEER_ISS + 100_000, last - 1)), false, 'older timestamp, even with a newer ISN');
  assert.equal(a.acceptsNewSyn({ ...newSyn(PEER_ISS + 100_000, last + 1), flags: SYN | ACK }), false, 'not a bare SYN');
});

test('RFC 6191 §2 (RFC 1122 §4.2.2.13 without timestamps): in TIME-WAIT only a SYN above RCV.NXT may start a new incarnation', () => {
  const peer = inTimeWait(false);
  const a = peer.conn;
  const rcvNxt = PEER_ISS + 2;
  assert.equal(a.acceptsNewSyn(newSyn(rcvNxt + 1)), true);
  assert.equal(a.acceptsNewSyn(newSyn(rcvNxt)), false);
  assert.equal(a.acceptsNewSyn(newSyn(rcvNxt - 1000)), false);
});

test('RFC 6191: a connection not in TIME-WAIT never accepts a new SYN for its 4-tuple', () => {
  const peer = new ScriptedPeer();
  assert.equal(peer.conn.state, 'ESTABLISHED');
  assert.equal(peer.conn.acceptsNewSyn(newSyn(PEER_ISS + 100_000, peer.tsValue + 1000)), false);
});
