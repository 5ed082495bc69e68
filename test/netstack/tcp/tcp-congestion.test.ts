import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCongestionControl } from '../../../src/netstack/tcp/tcp-congestion.js';
import { initialWindow } from '../../../src/netstack/tcp/tcp-initial-window.js';
import { RttEstimator } from '../../../src/netstack/tcp/tcp-rtt.js';

const MSS = 1000;

for (const kind of ['newreno', 'cubic'] as const) {
  test(`${kind}: slow start doubles per round, a loss reduces, a timeout drops to one segment`, () => {
    const cc = createCongestionControl(kind, MSS);
    assert.equal(cc.cwnd, initialWindow(MSS));
    assert.equal(cc.cwnd, 10 * MSS);
    cc.onAck(cc.cwnd, 0);
    assert.equal(cc.cwnd, 20 * MSS);
    cc.onCongestionEvent(20 * MSS, 100);
    assert.equal(cc.cwnd, kind === 'newreno' ? 10 * MSS : 14 * MSS);
    assert.equal(cc.ssthresh, cc.cwnd);
    const reduced = cc.cwnd;
    for (let t = 100; t < 5000; t += 50) cc.onAck(cc.cwnd, t);
    assert.ok(cc.cwnd > reduced, 'congestion avoidance grows the window again');
    cc.onRetransmitTimeout(10 * MSS);
    assert.equal(cc.cwnd, MSS);
  });
}

test('cubic: after a loss the window returns to its old maximum within K seconds and plateaus there', () => {
  const cc = createCongestionControl('cubic', MSS);
  cc.onAck(90 * MSS, 0); // cwnd 100 segments
  cc.onCongestionEvent(100 * MSS, 0);
  assert.equal(cc.cwnd, 70 * MSS);
  const k = Math.cbrt((100 - 70) / 0.4); // ≈ 4.2 s
  let t = 0;
  while (t < (k - 1) * 1000) {
    t += 10;
    cc.onAck(MSS, t);
  }
  assert.ok(cc.cwnd < 100 * MSS, `still below Wmax before K: ${cc.cwnd / MSS}`);
  while (t < (k + 0.5) * 1000) {
    t += 10;
    cc.onAck(MSS, t);
  }
  assert.ok(Math.abs(cc.cwnd / MSS - 100) < 5, `near Wmax around K: ${cc.cwnd / MSS}`);
});

test('RTT estimator: RFC 6298 smoothing, the minimum, backoff doubling to the maximum', () => {
  const rtt = new RttEstimator(1000, 200, 8000);
  assert.equal(rtt.rto, 1000);
  rtt.sample(100); // srtt 100, rttvar 50 → 300
  assert.equal(rtt.rto, 300);
  rtt.sample(100); // rttvar 37.5 → 250
  assert.equal(rtt.rto, 250);
  for (let i = 0; i < 50; i++) rtt.sample(10);
  assert.equal(rtt.rto, 200, 'clamped to minRtoMs');
  rtt.backoff();
  assert.equal(rtt.rto, 400);
  for (let i = 0; i < 10; i++) rtt.backoff();
  assert.equal(rtt.rto, 8000);
  rtt.resetBackoff();
  assert.equal(rtt.rto, 200);
});
