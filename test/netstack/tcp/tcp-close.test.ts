import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection, type TcpCloseReason, type TcpState } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig, type TcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { TcpFlags, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { establishedPair, lastFrom, SimLink } from './sim-link.js';
import { Endpoint, randomBytes, sha256 } from './transfer-driver.js';

const { SYN, ACK, RST, FIN } = TcpFlags;
const config = (o: Partial<TcpConfig> = {}) => tcpConfig({ delayedAckMs: 0, timeWaitMs: 2000, ...o });

function closedReasons(link: SimLink): { a: TcpCloseReason[]; b: TcpCloseReason[] } {
  const r = { a: [] as TcpCloseReason[], b: [] as TcpCloseReason[] };
  (link.a as TcpConnection).events = { ...link.a?.events, closed: (x) => r.a.push(x) };
  (link.b as TcpConnection).events = { ...link.b?.events, closed: (x) => r.b.push(x) };
  return r;
}

function statesSeen(link: SimLink): { a: Set<TcpState>; b: Set<TcpState> } {
  const seen = { a: new Set<TcpState>(), b: new Set<TcpState>() };
  link.onStep = () => {
    seen.a.add((link.a as TcpConnection).state);
    seen.b.add((link.b as TcpConnection).state);
  };
  return seen;
}

test('active close: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT, which ends exactly 2MSL later with closed', () => {
  const link = establishedPair(config(), config());
  const reasons = closedReasons(link);
  const a = link.a as TcpConnection;
  const b = link.b as TcpConnection;
  const seen = statesSeen(link);
  a.end();
  assert.equal(a.state, 'FIN-WAIT-1');
  assert.ok(link.run(() => a.state === 'FIN-WAIT-2', 1000));
  assert.equal(b.state, 'CLOSE-WAIT');
  b.end();
  assert.equal(b.state, 'LAST-ACK');
  assert.ok(link.run(() => a.state === 'TIME-WAIT', 1000));
  const enteredTimeWait = link.now;
  assert.ok(link.run(() => b.state === 'CLOSED', 1000));
  assert.deepEqual(reasons.b, ['closed']);
  assert.equal(a.pollAt(), enteredTimeWait + 2000);
  assert.ok(link.run(() => a.state === 'CLOSED', 10_000));
  assert.equal(link.now, enteredTimeWait + 2000);
  assert.deepEqual(reasons.a, ['closed']);
  assert.ok(seen.a.has('FIN-WAIT-2') && seen.b.has('LAST-ACK'));
});

test('TIME-WAIT answers a retransmitted FIN and restarts its timer', () => {
  const link = establishedPair(config(), config());
  const a = link.a as TcpConnection;
  const b = link.b as TcpConnection;
  a.end();
  link.run(() => a.state === 'FIN-WAIT-2', 1000);
  b.end();
  // Lose A's last ACK once: B resends its FIN after its RTO.
  let dropped = 0;
  link.dropIf = (seg, fromA) => fromA && seg.flags === ACK && dropped++ === 0;
  link.run(() => a.state === 'TIME-WAIT', 1000);
  const first = link.now;
  assert.ok(link.run(() => b.state === 'CLOSED', 5000));
  const resent = link.log.filter((l) => !l.fromA && l.seg.flags & FIN);
  assert.equal(resent.length, 2);
  assert.ok(link.run(() => a.state === 'CLOSED', 20_000));
  assert.ok(link.now > first + 2000, 'the retransmitted FIN restarted 2MSL');
});

test('TIME-WAIT does not answer a bare ACK (two TIME-WAIT ends would loop)', () => {
  const link = pairIn('TIME-WAIT');
  const a = link.a as TcpConnection;
  const last = lastFrom(link, true);
  a.handleSegment({ ...last, srcPort: 80, dstPort: 40000, seq: last.ack, ack: last.seq, flags: ACK, options: {} }, link.now);
  assert.ok(a.pollAt() > link.now, 'nothing is due');
  const out: TcpRepr[] = [];
  a.transmit(link.now, (s) => out.push(s));
  assert.deepEqual(out, []);
});

test('simultaneous close: both sides pass CLOSING and TIME-WAIT', () => {
  const link = establishedPair(config(), config());
  const reasons = closedReasons(link);
  const seen = statesSeen(link);
  link.a?.end();
  link.b?.end();
  assert.ok(link.run(() => link.a?.state === 'CLOSED' && link.b?.state === 'CLOSED', 20_000));
  for (const side of [seen.a, seen.b]) {
    assert.ok(side.has('CLOSING') && side.has('TIME-WAIT'), [...side].join(' '));
  }
  assert.deepEqual(reasons, { a: ['closed'], b: ['closed'] });
});

for (const closer of ['a', 'b'] as const) {
  test(`half-close: ${closer.toUpperCase()} ends first, the other side keeps sending 1 MiB, then ends`, () => {
    const link = establishedPair(config(), config(), { seed: 3, loss: 0.01 });
    link.recording = false;
    const first = new Endpoint(link[closer] as TcpConnection, randomBytes(1000, 1));
    const big = randomBytes(1 << 20, 2);
    const other = new Endpoint(link[closer === 'a' ? 'b' : 'a'] as TcpConnection, big);
    other.writing = false;
    link.onStep = () => {
      first.pump();
      other.writing = other.remoteClosed; // send only after the peer's FIN: data into a half-closed connection
      other.pump();
    };
    assert.ok(link.run(() => first.closedReason !== null && other.closedReason !== null, 600_000));
    assert.equal(other.receivedBytes, 1000);
    assert.equal(sha256(first.data()), sha256(big));
    assert.equal(first.closedReason, 'closed');
    assert.equal(other.closedReason, 'closed');
  });
}

/** Puts A into `state` against a live B; returns the pair. */
function pairIn(state: TcpState): SimLink {
  const link = establishedPair(config({ timeWaitMs: 60_000 }), config({ timeWaitMs: 60_000 }));
  const a = link.a as TcpConnection;
  const b = link.b as TcpConnection;
  const dropFinFromA = (seg: TcpRepr, fromA: boolean) => fromA && (seg.flags & FIN) !== 0;
  switch (state) {
    case 'ESTABLISHED':
      break;
    case 'FIN-WAIT-1':
      link.dropIf = dropFinFromA;
      a.end();
      link.runUntilTime(link.now + 50);
      break;
    case 'FIN-WAIT-2':
      a.end();
      link.run(() => a.state === 'FIN-WAIT-2' && link.inFlight === 0, 1000);
      break;
    case 'CLOSE-WAIT':
      b.end();
      link.run(() => a.state === 'CLOSE-WAIT' && link.inFlight === 0, 1000);
      break;
    case 'LAST-ACK':
      b.end();
      link.run(() => a.state === 'CLOSE-WAIT' && link.inFlight === 0, 1000);
      link.dropIf = dropFinFromA;
      a.end();
      link.runUntilTime(link.now + 50);
      break;
    case 'CLOSING':
      // Both FINs cross; A's never arrives, so B's FIN finds A in FIN-WAIT-1.
      link.dropIf = dropFinFromA;
      a.end();
      b.end();
      link.run(() => a.state === 'CLOSING' && link.inFlight === 0, 1000);
      break;
    case 'TIME-WAIT':
      a.end();
      link.run(() => a.state === 'FIN-WAIT-2', 1000);
      b.end();
      link.run(() => a.state === 'TIME-WAIT' && link.inFlight === 0, 1000);
      break;
    default:
      throw new Error(`pairIn(${state}) is not supported`);
  }
  assert.equal(a.state, state);
  return link;
}

for (const state of ['ESTABLISHED', 'FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSE-WAIT', 'CLOSING', 'LAST-ACK', 'TIME-WAIT'] as const) {
  test(`RST in ${state}: an exact RST closes; an in-window inexact one draws a challenge ACK`, () => {
    const link = pairIn(state);
    const a = link.a as TcpConnection;
    const reasons = closedReasons(link);
    const rcvNxt = lastFrom(link, true).ack;
    const rst = (seq: number): TcpRepr => ({
      srcPort: 80, dstPort: 40000, seq, ack: 0, flags: RST, window: 0, urgent: 0, options: {}, payload: Buffer.alloc(0),
    });
    const out: TcpRepr[] = [];
    if (state !== 'TIME-WAIT') {
      a.handleSegment(rst((rcvNxt + 10) >>> 0), link.now);
      assert.equal(a.state, state, 'an inexact RST does not close');
      a.transmit(link.now, (s) => out.push(s));
      assert.ok(out.some((s) => s.flags === ACK && s.ack === rcvNxt), 'challenge ACK');
    }
    a.handleSegment(rst((rcvNxt - 1000) >>> 0), link.now);
    assert.equal(a.state, state, 'an out-of-window RST is ignored');
    a.handleSegment(rst(rcvNxt), link.now);
    assert.equal(a.state, 'CLOSED');
    assert.deepEqual(reasons.a, [state === 'TIME-WAIT' ? 'closed' : 'reset']);
  });
}

test('RST in SYN-RECEIVED (accepted) closes with reset', () => {
  const link = new SimLink({ delayMs: 5 });
  link.recording = true;
  link.a = TcpConnection.connect(40000, 80, 100, 0, config());
  link.listener = { config: config(), iss: 5000, autoAccept: true };
  link.dropIf = (seg, fromA) => fromA && seg.flags === ACK; // A's handshake ACK never arrives
  link.run(() => link.a?.state === 'ESTABLISHED', 1000);
  const b = link.b as TcpConnection;
  assert.equal(b.state, 'SYN-RECEIVED');
  let reason = '';
  b.events = { closed: (r) => (reason = r) };
  b.handleSegment({ srcPort: 40000, dstPort: 80, seq: 101, ack: 0, flags: RST, window: 0, urgent: 0, options: {}, payload: Buffer.alloc(0) }, link.now);
  assert.equal(b.state, 'CLOSED');
  assert.equal(reason, 'reset');
});

test('a SYN in ESTABLISHED draws a challenge ACK and changes nothing (RFC 5961)', () => {
  const link = establishedPair(config(), config());
  const a = link.a as TcpConnection;
  const rcvNxt = lastFrom(link, true).ack;
  a.handleSegment({ srcPort: 80, dstPort: 40000, seq: (rcvNxt + 5) >>> 0, ack: 0, flags: SYN, window: 100, urgent: 0, options: {}, payload: Buffer.alloc(0) }, link.now);
  const out: TcpRepr[] = [];
  a.transmit(link.now, (s) => out.push(s));
  assert.equal(a.state, 'ESTABLISHED');
  assert.deepEqual(out.map((s) => [s.flags, s.ack]), [[ACK, rcvNxt]]);
});

test('abort() in ESTABLISHED sends RST|ACK at the next transmit; the peer closes with reset', () => {
  const link = establishedPair(config(), config());
  const reasons = closedReasons(link);
  link.a?.abort();
  assert.ok(link.run(() => link.b?.state === 'CLOSED', 1000));
  assert.deepEqual(reasons, { a: ['aborted'], b: ['reset'] });
  assert.equal(lastFrom(link, true).flags, RST | ACK);
});

test('RTO backoff: retransmissions at 1, 2, 4 … times the RTO, capped at maxRtoMs', () => {
  const link = establishedPair(config({ minRtoMs: 200, maxRtoMs: 3000 }), config());
  link.dropIf = () => true;
  const a = link.a as TcpConnection;
  a.write(Buffer.alloc(500, 1));
  const start = link.now;
  link.runUntilTime(start + 12_000);
  const sends = link.log.filter((l) => l.fromA && l.seg.payload.length > 0).map((l) => l.t - start);
  assert.deepEqual(sends, [0, 200, 600, 1400, 3000, 6000, 9000, 12000]);
});

test('retransmission limit: closed(timeout) and an RST', () => {
  const link = establishedPair(config({ minRtoMs: 200, maxRetransmissions: 3 }), config());
  const reasons = closedReasons(link);
  link.dropIf = () => true;
  link.a?.write(Buffer.alloc(500, 1));
  const start = link.now;
  assert.ok(link.run(() => link.a?.state === 'CLOSED', 100_000));
  const fromA = link.log.filter((l) => l.fromA && l.t >= start);
  assert.deepEqual(
    fromA.map((l) => [l.t - start, l.seg.flags & RST ? 'rst' : l.seg.payload.length]),
    [[0, 500], [200, 500], [600, 500], [1400, 500], [3000, 'rst']],
  );
  assert.deepEqual(reasons.a, ['timeout']);
});

test('keepalive: a dead peer is detected after idle + probes × interval; a live one answers', () => {
  const keepalive = { idleMs: 10_000, intervalMs: 1000, probes: 3 };
  const live = establishedPair(config({ keepalive }), config());
  live.runUntilTime(live.now + 60_000);
  assert.equal(live.a?.state, 'ESTABLISHED');
  assert.ok(live.log.filter((l) => l.fromA && l.t > 1000).length >= 5, 'probes were sent and answered');

  const link = establishedPair(config({ keepalive }), config());
  const reasons = closedReasons(link);
  const lastHeard = link.log.filter((l) => !l.fromA).at(-1);
  const idleFrom = (lastHeard?.t ?? 0) + link.faults.delayMs; // when A last heard from B
  link.dropIf = (_seg, fromA) => fromA; // the peer is gone
  assert.ok(link.run(() => link.a?.state === 'CLOSED', 100_000));
  const probes = link.log.filter((l) => l.fromA && l.t > idleFrom).map((l) => [l.t - idleFrom, l.seg.flags]);
  assert.deepEqual(probes, [[10_000, ACK], [11_000, ACK], [12_000, ACK], [13_000, RST | ACK]]);
  assert.deepEqual(reasons.a, ['timeout']);
});
