import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCongestionControl } from '../../../src/netstack/tcp/tcp-congestion.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { establishedPair } from './sim-link.js';

const MSS = 1000;

for (const kind of ['newreno', 'cubic'] as const) {
  test(`RFC 5681 §3.1 (eq. 4 note), ${kind}: a second timeout for the same data holds ssthresh`, () => {
    const cc = createCongestionControl(kind, MSS);
    cc.onAck(90 * MSS, 0); // slow start to 100 segments
    cc.onRetransmitTimeout(100 * MSS);
    const held = cc.ssthresh;
    assert.ok(held >= 50 * MSS, `first timeout halves or less: ${held / MSS} segments`);
    assert.equal(cc.cwnd, MSS);
    // After the first timeout only the one retransmitted segment is in flight; a second timeout before any
    // new acknowledgment must not recompute ssthresh from that collapsed flight size.
    cc.onRetransmitTimeout(MSS);
    assert.equal(cc.ssthresh, held);
    cc.onRetransmitTimeout(MSS);
    assert.equal(cc.ssthresh, held);
    assert.equal(cc.cwnd, MSS);
    // New data acknowledged: the next timeout is a new loss event again.
    cc.onAck(MSS, 1000);
    cc.onRetransmitTimeout(2 * MSS);
    assert.equal(cc.ssthresh, 2 * MSS);
  });
}

test('RFC 5681 §3.1: after two timeouts in a row the connection slow-starts back towards the held ssthresh', () => {
  const config = tcpConfig({ congestion: 'cubic' });
  const link = establishedPair(config, config, { delayMs: 5 });
  const a = link.a!;
  const source = Buffer.alloc(65536, 7);
  link.onStep = () => {
    while (a.write(source) > 0);
    for (let d = link.b!.read(); d !== null; d = link.b!.read());
  };
  link.runUntilTime(link.now + 200); // the window opens well beyond 100 segments
  // Black hole both ways for two RTOs (200 ms, then 400 ms backed off), then heal the path.
  const healed = link.now + 700;
  link.dropIf = () => link.now < healed;
  link.runUntilTime(healed + 1200); // the third timeout (800 ms) retransmits and is answered
  let first = -1;
  for (const entry of link.log) {
    if (entry.fromA && entry.t > healed && entry.seg.payload.length > 0) {
      first = entry.t;
      break;
    }
  }
  assert.ok(first > 0, 'A retransmitted after the path healed');
  // Eight round trips (10 ms each) after the first retransmission: slow start sends ~2^8 segments, congestion
  // avoidance from 2 segments (ssthresh recomputed from the collapsed flight) ~45.
  let sent = 0;
  for (const entry of link.log) if (entry.fromA && entry.t >= first && entry.t < first + 80 && entry.seg.payload.length > 0) sent++;
  assert.ok(sent > 100, `segments in the 8 RTTs after recovery: ${sent}`);
});
