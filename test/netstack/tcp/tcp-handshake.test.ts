import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { resetFor } from '../../../src/netstack/tcp/tcp-reset.js';
import { TcpFlags, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { establishedPair, lastFrom, SimLink } from './sim-link.js';

const { SYN, ACK, RST, FIN } = TcpFlags;

function syn(seq: number, options: TcpRepr['options'] = { mss: 1460 }): TcpRepr {
  return { srcPort: 5555, dstPort: 80, seq, ack: 0, flags: SYN, window: 65535, urgent: 0, options, payload: Buffer.alloc(0) };
}

function collect(conn: TcpConnection, now: number): TcpRepr[] {
  const out: TcpRepr[] = [];
  conn.transmit(now, (s) => out.push({ ...s, payload: Buffer.from(s.payload) }));
  return out;
}

test('active and passive open: three segments, both sides established, options negotiated', () => {
  const link = new SimLink({ delayMs: 5 });
  link.recording = true;
  const events: string[] = [];
  const a = TcpConnection.connect(40000, 80, 100, 0, tcpConfig());
  a.events = { established: () => events.push('a') };
  link.a = a;
  link.listener = { config: tcpConfig(), iss: 7000, autoAccept: true };
  link.onStep = () => {
    if (link.b && !link.b.events.established) link.b.events = { established: () => events.push('b') };
  };
  assert.ok(link.run(() => link.b?.state === 'ESTABLISHED', 1000));
  assert.equal(a.state, 'ESTABLISHED');
  assert.deepEqual(events, ['a', 'b']);
  const [s1, s2, s3] = link.log.map((l) => l.seg);
  assert.equal(s1.flags, SYN);
  assert.equal(s1.seq, 100);
  assert.deepEqual(Object.keys(s1.options).sort(), ['mss', 'sackPermitted', 'timestamp', 'windowScale']);
  assert.equal(s2.flags, SYN | ACK);
  assert.equal(s2.seq, 7000);
  assert.equal(s2.ack, 101);
  assert.equal(s2.options.timestamp?.echo, s1.options.timestamp?.value);
  assert.equal(s3.flags, ACK);
  assert.equal(s3.seq, 101);
  assert.equal(s3.ack, 7001);
  assert.equal(link.log.length, 3);
  assert.equal(a.effectiveMss, 1448);
});

test('two-phase accept: nothing is sent before accept(); accept() sends the SYN-ACK', () => {
  const b = TcpConnection.fromSyn(syn(5000), 9000, 0, tcpConfig());
  assert.equal(b.state, 'SYN-RECEIVED');
  assert.equal(b.pollAt(), Number.POSITIVE_INFINITY);
  assert.deepEqual(collect(b, 10), []);
  b.handleSegment(syn(5000), 20); // the client retransmits its SYN meanwhile
  assert.deepEqual(collect(b, 30), []);
  b.accept(40);
  assert.equal(b.pollAt(), 40);
  const out = collect(b, 40);
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, SYN | ACK);
  assert.equal(out[0].seq, 9000);
  assert.equal(out[0].ack, 5001);
  assert.equal(out[0].options.windowScale, undefined, 'the SYN offered no window scale, so the SYN-ACK has none');
  assert.equal(out[0].options.sackPermitted, undefined);
});

test('two-phase accept: abort() before accept() answers the SYN with RST|ACK, as a closed port would', () => {
  const b = TcpConnection.fromSyn(syn(5000), 9000, 0, tcpConfig());
  let reason = '';
  b.events = { closed: (r) => (reason = r) };
  b.abort();
  assert.ok(b.pollAt() <= 0);
  const out = collect(b, 1);
  assert.deepEqual(
    out.map((s) => [s.flags, s.seq, s.ack]),
    [[RST | ACK, 0, 5001]],
  );
  assert.equal(b.state, 'CLOSED');
  assert.equal(reason, 'aborted');
  assert.equal(b.pollAt(), Number.POSITIVE_INFINITY);
});

test('simultaneous open: crossing SYNs reach ESTABLISHED on both sides', () => {
  const link = new SimLink({ delayMs: 5 });
  link.recording = true;
  link.a = TcpConnection.connect(1111, 2222, 100, 0, tcpConfig());
  link.b = TcpConnection.connect(2222, 1111, 900, 0, tcpConfig());
  const seen = new Set<string>();
  link.onStep = () => {
    seen.add(`a:${link.a?.state}`);
    seen.add(`b:${link.b?.state}`);
  };
  assert.ok(link.run(() => link.a?.state === 'ESTABLISHED' && link.b?.state === 'ESTABLISHED', 5000));
  assert.ok(seen.has('a:SYN-RECEIVED') && seen.has('b:SYN-RECEIVED'), [...seen].join(' '));
  // Data flows afterwards.
  link.a.write(Buffer.from('ping'));
  assert.ok(link.run(() => (link.b?.recvBuffered ?? 0) === 4, 5000));
  assert.equal(link.b.read()?.toString(), 'ping');
});

for (const [wsA, wsB] of [
  [true, true],
  [true, false],
  [false, true],
] as const) {
  test(`window scale: A ${wsA ? 'offers' : 'does not offer'}, B ${wsB ? 'offers' : 'does not offer'}`, () => {
    const config = { recvBufferSize: 1 << 20, maxAdvertisedWindow: 1 << 20, delayedAckMs: 0 };
    const link = establishedPair(tcpConfig({ ...config, windowScaling: wsA }), tcpConfig({ ...config, windowScaling: wsB }));
    const [s1, s2] = link.log.map((l) => l.seg);
    assert.equal(s1.options.windowScale, wsA ? 5 : undefined);
    assert.equal(s2.options.windowScale, wsA && wsB ? 5 : undefined, 'the SYN-ACK scales only when the SYN offered it');
    (link.b as TcpConnection).write(Buffer.alloc(100));
    assert.ok(link.run(() => (link.a?.recvBuffered ?? 0) === 100 && link.inFlight === 0, 1000));
    const ackFromA = lastFrom(link, true);
    // The right edge stays where it was (1 MiB, or 65535 unscaled) and 100 bytes of it were used.
    assert.equal(ackFromA.window, wsA && wsB ? Math.ceil(((1 << 20) - 100) / 32) : 65535 - 100);
  });
}

test('SYN retries exhausted: the SYN is resent with backoff, then closed(timeout)', () => {
  const link = new SimLink({ delayMs: 5 });
  link.recording = true;
  link.dropIf = () => true;
  const a = TcpConnection.connect(40000, 80, 1, 0, tcpConfig({ synRetries: 3, initialRtoMs: 1000 }));
  let reason = '';
  a.events = { closed: (r) => (reason = r) };
  link.a = a;
  link.run(() => a.state === 'CLOSED', 100_000);
  assert.deepEqual(
    link.log.map((l) => [l.t, l.seg.flags]),
    [
      [0, SYN],
      [1000, SYN],
      [3000, SYN],
      [7000, SYN],
    ],
  );
  assert.equal(reason, 'timeout');
  assert.equal(link.now, 15000);
});

test('RST answering our SYN: closed(refused)', () => {
  const link = new SimLink({ delayMs: 5 });
  const a = TcpConnection.connect(40000, 80, 1, 0, tcpConfig());
  let reason = '';
  a.events = { closed: (r) => (reason = r) };
  link.a = a; // no listener: the link answers with resetFor, as the stack does for a closed port
  link.run(() => a.state === 'CLOSED', 10_000);
  assert.equal(reason, 'refused');
  assert.equal(link.resets.length, 1);
});

test('SYN-SENT: an RST whose ACK does not match our SYN is ignored; a bad ACK draws an RST', () => {
  const a = TcpConnection.connect(40000, 80, 1000, 0, tcpConfig());
  collect(a, 0);
  const base = { srcPort: 80, dstPort: 40000, window: 1000, urgent: 0, options: {}, payload: Buffer.alloc(0) };
  a.handleSegment({ ...base, seq: 5, ack: 999, flags: RST | ACK }, 1);
  assert.equal(a.state, 'SYN-SENT');
  a.handleSegment({ ...base, seq: 5, ack: 5000, flags: SYN | ACK }, 2);
  assert.equal(a.state, 'SYN-SENT');
  assert.deepEqual(
    collect(a, 2).map((s) => [s.flags, s.seq]),
    [[RST, 5000]],
  );
});

test('resetFor: the RFC 9293 replies for a closed port', () => {
  const base = { srcPort: 1234, dstPort: 80, window: 100, urgent: 0, options: {}, payload: Buffer.alloc(0) };
  const toSyn = resetFor({ ...base, seq: 0xffffffff, ack: 0, flags: SYN });
  assert.deepEqual(
    toSyn && [toSyn.srcPort, toSyn.dstPort, toSyn.seq, toSyn.ack, toSyn.flags],
    [80, 1234, 0, 0, RST | ACK],
  );
  const toAck = resetFor({ ...base, seq: 10, ack: 777, flags: ACK, payload: Buffer.alloc(5) });
  assert.deepEqual(toAck && [toAck.seq, toAck.ack, toAck.flags], [777, 0, RST]);
  const toData = resetFor({ ...base, seq: 10, ack: 0, flags: FIN, payload: Buffer.alloc(5) });
  assert.deepEqual(toData && [toData.seq, toData.ack, toData.flags], [0, 16, RST | ACK]);
  assert.equal(resetFor({ ...base, seq: 10, ack: 0, flags: RST }), null);
  assert.equal(resetFor({ ...base, seq: 10, ack: 5, flags: RST | ACK }), null);
});

test('two-phase accept: an RST before accept() closes with reset and sends nothing', () => {
  const b = TcpConnection.fromSyn(syn(5000), 9000, 0, tcpConfig());
  let reason = '';
  b.events = { closed: (r) => (reason = r) };
  b.handleSegment({ ...syn(5001), flags: RST }, 5);
  assert.equal(b.state, 'CLOSED');
  assert.equal(reason, 'reset');
  assert.deepEqual(collect(b, 6), []);
});
