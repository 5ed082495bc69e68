import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { establishedPair } from './sim-link.js';

const DAY = 24 * 3600 * 1000;

function received(conn: { read(): Buffer | null }): number {
  let n = 0;
  for (let d = conn.read(); d !== null; d = conn.read()) n += d.length;
  return n;
}

test('RFC 7323 §5.5: after more than 24 idle days TS.Recent is invalid, and the peer\'s segments are accepted again', () => {
  const config = tcpConfig({ timestamps: true, keepalive: null });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const b = link.b!;
  b.write(Buffer.alloc(1000, 1));
  link.runUntilTime(link.now + 100);
  assert.equal(received(a), 1000);
  // 30 days without a segment: B's millisecond timestamp clock moved on by more than 2^31.
  link.now += 30 * DAY;
  b.write(Buffer.alloc(1000, 2));
  link.runUntilTime(link.now + 5000);
  assert.equal(received(a), 1000, 'the data after the idle period arrives');
  b.write(Buffer.alloc(500, 3));
  link.runUntilTime(link.now + 100);
  assert.equal(received(a), 500, 'and so does what follows it');
});

test('RFC 7323 §5.3: within 24 days PAWS still drops a segment with an older timestamp', () => {
  const config = tcpConfig({ timestamps: true, keepalive: null });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const b = link.b!;
  b.write(Buffer.alloc(1000, 1));
  link.runUntilTime(link.now + 100);
  assert.equal(received(a), 1000);
  const old = link.log.filter((l) => !l.fromA && l.seg.payload.length > 0)[0].seg;
  link.now += 20 * DAY;
  // A replayed copy of new data (next in sequence) carrying the old timestamp: an old duplicate.
  const ts = old.options.timestamp!;
  const replay = {
    ...old,
    seq: (old.seq + 1000) >>> 0,
    options: { ...old.options, timestamp: { value: (ts.value - 1000) >>> 0, echo: ts.echo } },
    payload: Buffer.alloc(100, 9),
  };
  a.handleSegment(replay, link.now);
  assert.equal(received(a), 0);
});
