import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../../src/seeded-random.js';
import { LinkShaper, validateProfile, type WanProfile } from '../../../src/sandbox/wan/link-shaper.js';

const base: WanProfile = { id: 'test', rttMs: 20, rateMbit: 100, lossPercent: 0, queueMs: 5 };
const never = (): number => 1;

test('an idle link delays by half the RTT plus the packet time at the rate', () => {
  const shaper = new LinkShaper(base, never);
  // 1250 bytes at 100 Mbit/s: 0.1 ms.
  assert.equal(shaper.admit(1000, 1, 1250), 1000 + 0.1 + 10);
  assert.equal(shaper.admit(2000, 1, 1250), 2000 + 0.1 + 10);
});

test('back-to-back packets queue behind each other, and the queue drops what would wait longer than queueMs', () => {
  const shaper = new LinkShaper(base, never);
  const times: number[] = [];
  // 100 packets of 0.1 ms at once: 5 ms of queue holds the first 51 (one is being sent, 50 wait).
  for (let i = 0; i < 100; i++) times.push(shaper.admit(0, 1, 1250));
  const sent = times.filter((t) => !Number.isNaN(t));
  assert.equal(sent.length, 51);
  assert.ok(Math.abs(sent.at(-1)! - (5.1 + 10)) < 1e-9, String(sent.at(-1)));
  assert.equal(shaper.stats.queueDroppedSegments, 49);
  // A TSO packet of 10 segments arriving at 5.0 ms finds 0.1 ms queued: all 10 fit (1 ms).
  assert.ok(Math.abs(shaper.admit(5, 10, 1250) - (6.1 + 10)) < 1e-9);
  assert.deepEqual([...shaper.kept.subarray(0, 10)], Array(10).fill(1));
});

test('a TSO packet that does not fit loses only its tail segments', () => {
  const shaper = new LinkShaper({ ...base, queueMs: 0.45 }, never);
  const at = shaper.admit(0, 8, 1250);
  assert.deepEqual([...shaper.kept.subarray(0, 8)], [1, 1, 1, 1, 1, 0, 0, 0]);
  assert.ok(Math.abs(at - (0.5 + 10)) < 1e-9);
});

test('loss is random per segment at the profile rate, replayable from the seed, and lost segments take no time', () => {
  const lossy = { ...base, rateMbit: 0, lossPercent: 1, queueMs: 1 };
  const run = (seed: number): number[] => {
    const shaper = new LinkShaper(lossy, seededRandom(seed));
    const lost: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      shaper.admit(i, 10, 1500);
      for (let s = 0; s < 10; s++) if (shaper.kept[s] === 0) lost.push(i * 10 + s);
    }
    assert.equal(shaper.stats.queueDroppedSegments, 0);
    return lost;
  };
  const lost = run(42);
  // 200,000 segments at 1 %: 2,000 expected, σ ≈ 44.
  assert.ok(lost.length > 1800 && lost.length < 2200, `${lost.length} of 200000 lost`);
  assert.deepEqual(run(42), lost);
  assert.notDeepEqual(run(43), lost);
  const all = new LinkShaper({ ...base, lossPercent: 99.99 }, () => 0);
  assert.ok(Number.isNaN(all.admit(0, 3, 1250)));
  assert.equal(all.admit(0, 1, 1250), NaN);
  all.setProfile(base);
  assert.equal(all.admit(0, 1, 1250), 0.1 + 10, 'lost segments left time on the link');
});

test('a profile with a bad figure is refused with its name and the field', () => {
  assert.throws(() => validateProfile({ ...base, lossPercent: 100 }), /"test": lossPercent 100/);
  assert.throws(() => validateProfile({ ...base, rttMs: -1 }), /rttMs -1/);
  assert.throws(() => validateProfile({ ...base, queueMs: 0 }), /queueMs 0/);
  assert.throws(() => validateProfile({ ...base, id: 'A B' }), /its id/);
  assert.throws(() => new LinkShaper(base, never).setProfile({ ...base, rateMbit: Number.NaN }), /rateMbit NaN/);
});
