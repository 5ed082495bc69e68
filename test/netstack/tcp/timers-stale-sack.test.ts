import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpFlags } from '../../../src/netstack/wire/reprs.js';
import { LOCAL_ISS, PEER_ISS, ScriptedPeer } from './scripted-peer.js';

const { ACK, FIN } = TcpFlags;

test('RFC 2018 §4: a persist probe sent after the hole filled carries no stale SACK block', () => {
  const peer = new ScriptedPeer();
  const a = peer.conn;
  a.write(Buffer.alloc(20_000, 1));
  const sent = peer.transmit(10).reduce((n, s) => n + s.payload.length, 0);
  assert.ok(sent > 0 && sent < 20_000);
  // The peer takes everything and closes its window: the persist timer starts.
  peer.send(20, LOCAL_ISS + 1 + sent, 0);
  peer.transmit(20);
  // Out-of-order data: the duplicate ACK reports it in a SACK block.
  const hole = Buffer.alloc(1000, 2);
  peer.send(30, LOCAL_ISS + 1 + sent, 0, { seq: PEER_ISS + 1 + 1000, payload: Buffer.alloc(1000, 3) });
  const dup = peer.transmit(30);
  assert.deepEqual(dup.map((s) => s.options.sack), [[[PEER_ISS + 1 + 1000, PEER_ISS + 1 + 2000]]]);
  // The hole fills just as the persist timer fires: nothing is held out of order any more.
  const probeAt = a.pollAt();
  assert.ok(probeAt > 30 && probeAt < 10_000, `persist timer at ${probeAt}`);
  peer.send(probeAt, LOCAL_ISS + 1 + sent, 0, { payload: hole });
  const out = peer.transmit(probeAt);
  assert.ok(out.some((s) => s.seq === LOCAL_ISS + sent), 'a window probe went out');
  for (const s of out) assert.equal(s.options.sack, undefined, `segment ${s.seq} carries SACK ${JSON.stringify(s.options.sack)}`);
});

test('RFC 2018 §4: the ACK sent on entering TIME-WAIT carries no SACK block', () => {
  const peer = new ScriptedPeer({ timeWaitMs: 60_000 });
  const a = peer.conn;
  a.end();
  const [fin] = peer.transmit(10);
  assert.ok(fin.flags & FIN);
  peer.send(20, LOCAL_ISS + 2, 1000);
  assert.equal(a.state, 'FIN-WAIT-2');
  // The peer's last data and FIN arrive before the segment ahead of them.
  peer.send(30, LOCAL_ISS + 2, 1000, { seq: PEER_ISS + 1 + 1000, payload: Buffer.alloc(1000, 1), flags: ACK | FIN });
  const dup = peer.transmit(30);
  assert.ok(dup.length > 0 && dup[0].options.sack !== undefined, 'the duplicate ACK reports the block');
  peer.send(40, LOCAL_ISS + 2, 1000, { payload: Buffer.alloc(1000, 2) });
  assert.equal(a.state, 'TIME-WAIT');
  const out = peer.transmit(40);
  assert.equal(out.length, 1);
  assert.equal(out[0].ack, PEER_ISS + 1 + 2000 + 1, 'the FIN is acknowledged');
  assert.equal(out[0].options.sack, undefined, `the TIME-WAIT ACK carries SACK ${JSON.stringify(out[0].options.sack)}`);
});
