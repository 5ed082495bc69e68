import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig, type TcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { seededRandom } from '../../../src/seeded-random.js';
import { establishedPair, SimLink, type LinkFaults } from './sim-link.js';
import { Endpoint, randomBytes, sha256 } from './transfer-driver.js';

const MIB = 1024 * 1024;

interface Outcome {
  link: SimLink;
  a: Endpoint;
  b: Endpoint;
  done: boolean;
}

function transfer(
  bytesAtoB: number,
  bytesBtoA: number,
  faults: Partial<LinkFaults>,
  configA: Partial<TcpConfig>,
  configB: Partial<TcpConfig> = configA,
  maxTimeMs = 600_000,
  recording = false,
  batchDelivery = false,
): Outcome {
  const link = new SimLink(faults);
  link.recording = recording;
  link.batchDelivery = batchDelivery;
  const seed = faults.seed ?? 1;
  link.a = TcpConnection.connect(40000, 80, 1000 + seed * 7919, 0, tcpConfig(configA));
  link.listener = { config: tcpConfig(configB), iss: 0xfffff000 - seed, autoAccept: true };
  const a = new Endpoint(link.a, randomBytes(bytesAtoB, seed));
  let b: Endpoint | null = null;
  const sourceB = randomBytes(bytesBtoA, seed + 100);
  link.onStep = () => {
    if (b === null && link.b !== null) b = new Endpoint(link.b, sourceB);
    a.pump();
    b?.pump();
  };
  const done = link.run(
    () => a.closedReason !== null && b !== null && b.closedReason !== null,
    maxTimeMs,
  );
  assert.ok(b, 'the listener never saw the SYN');
  return { link, a, b, done };
}

function assertDelivered(o: Outcome, bytesAtoB: number, bytesBtoA: number, seed: number): void {
  assert.equal(o.b.receivedBytes, bytesAtoB, 'bytes A→B');
  assert.equal(o.a.receivedBytes, bytesBtoA, 'bytes B→A');
  assert.equal(sha256(o.b.data()), sha256(randomBytes(bytesAtoB, seed)));
  assert.equal(sha256(o.a.data()), sha256(randomBytes(bytesBtoA, seed + 100)));
  assert.ok(o.done, `not closed by the deadline (t=${o.link.now})`);
  assert.equal(o.a.closedReason, 'closed');
  assert.equal(o.b.closedReason, 'closed');
}

test('a clean link carries 4 MiB each way and both sides close', () => {
  const o = transfer(4 * MIB, 4 * MIB, { seed: 1 }, { timeWaitMs: 1000 });
  assertDelivered(o, 4 * MIB, 4 * MIB, 1);
});

for (const sack of [true, false]) {
  for (const seed of [11, 22, 33]) {
    test(`loss 2% + reorder 5% + duplicate 1%, SACK ${sack ? 'on' : 'off'}, seed ${seed}: bytes arrive intact`, () => {
      const faults = { seed, delayMs: 5, loss: 0.02, reorder: 0.05, reorderDelayMs: 8, duplicate: 0.01 };
      const config = { sack, timeWaitMs: 1000, congestion: seed === 22 ? ('newreno' as const) : ('cubic' as const) };
      const o = transfer(2 * MIB, 2 * MIB, faults, config);
      assertDelivered(o, 2 * MIB, 2 * MIB, seed);
    });
  }
}

for (const sack of [true, false]) {
  test(`batched input (one transmit per batch of segments), SACK ${sack ? 'on' : 'off'}: bytes arrive intact`, () => {
    const faults = { seed: 44, delayMs: 5, loss: 0.02, reorder: 0.05, reorderDelayMs: 8, duplicate: 0.01 };
    const o = transfer(2 * MIB, 512 * 1024, faults, { sack, timeWaitMs: 1000 }, { sack, timeWaitMs: 1000 }, 600_000, false, true);
    assertDelivered(o, 2 * MIB, 512 * 1024, 44);
  });
}

test('64 KiB segments (TSO-sized sendSegmentMax) carry data under loss', () => {
  const config = { sendSegmentMax: 65000, mss: 1460, timeWaitMs: 1000 };
  const o = transfer(4 * MIB, 1 * MIB, { seed: 5, loss: 0.02, reorder: 0.05 }, config, config, 600_000, true);
  assertDelivered(o, 4 * MIB, 1 * MIB, 5);
  let largest = 0;
  for (const l of o.link.log) largest = Math.max(largest, l.seg.payload.length);
  assert.equal(largest, 65000);
  assert.equal(o.link.a?.effectiveMss, 1460 - 12); // what the device segments at: the MSS less the timestamp option
});

test('zero window: a stopped reader stalls the sender without loss; probes back off; reading resumes it', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ recvBufferSize: 65536, maxAdvertisedWindow: 65536 }));
  const conn = link.a as TcpConnection;
  const size = 1 * MIB;
  const a = new Endpoint(conn, randomBytes(size, 9));
  const b = new Endpoint(link.b as TcpConnection, Buffer.alloc(0));
  b.paused = true;
  link.onStep = () => {
    a.pump();
    b.pump();
  };
  const stallStart = link.now;
  link.runUntilTime(stallStart + 20_000);
  const receiver = link.b as TcpConnection;
  assert.equal(receiver.recvBuffered, 65536, 'the receive buffer fills exactly');
  assert.ok(conn.sendBuffered > 0);
  let dataSent = 0;
  const probeTimes: number[] = [];
  for (const l of link.log) {
    if (!l.fromA) continue;
    dataSent += l.seg.payload.length;
    if (l.seg.payload.length === 0 && l.t > stallStart) probeTimes.push(l.t);
  }
  assert.equal(dataSent, 65536, 'nothing was sent beyond the window, so nothing was lost or resent');
  assert.ok(probeTimes.length >= 3, `window probes: ${probeTimes.length}`);
  const gaps = probeTimes.slice(1).map((t, i) => t - probeTimes[i]);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] > gaps[i - 1], `probe gaps grow: ${gaps.join(',')}`);

  b.paused = false;
  const done = link.run(() => b.receivedBytes === size, link.now + 60_000);
  assert.ok(done, `transfer resumed: ${b.receivedBytes}/${size}`);
  assert.equal(sha256(b.data()), sha256(randomBytes(size, 9)));
});

test('a slow reader: the window reopens as the application reads (receiver SWS avoidance)', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ recvBufferSize: 32768, maxAdvertisedWindow: 32768 }));
  const size = 512 * 1024;
  const a = new Endpoint(link.a as TcpConnection, randomBytes(size, 4));
  const receiver = link.b as TcpConnection;
  const got: Buffer[] = [];
  let gotBytes = 0;
  link.onStep = () => {
    a.pump();
    // Read one buffer per round: the window opens in small steps.
    const chunk = receiver.read();
    if (chunk !== null) {
      got.push(Buffer.from(chunk));
      gotBytes += chunk.length;
    }
  };
  const done = link.run(() => gotBytes === size, 600_000);
  assert.ok(done);
  assert.equal(sha256(Buffer.concat(got)), sha256(randomBytes(size, 4)));
  for (const l of link.log) {
    if (l.fromA || l.seg.flags & 0x02) continue;
    const window = l.seg.window * 2 ** 0; // 32 KiB needs no scaling
    assert.ok(window === 0 || window >= 1460 || window === 32768, `no silly window advertised: ${window}`);
  }
});

test('data written into an already closed window starts the persist timer', () => {
  const link = establishedPair(tcpConfig({ delayedAckMs: 0 }), tcpConfig({ recvBufferSize: 4096, maxAdvertisedWindow: 4096 }));
  const a = link.a as TcpConnection;
  const b = link.b as TcpConnection;
  a.write(Buffer.alloc(4096, 1));
  link.runUntilTime(link.now + 100);
  assert.equal(b.recvBuffered, 4096);
  assert.equal(a.sendBuffered, 0, 'everything sent was acknowledged; the window is now zero');
  assert.equal(a.pollAt(), Number.POSITIVE_INFINITY);
  a.write(Buffer.alloc(100, 2));
  assert.ok(a.pollAt() < Number.POSITIVE_INFINITY, 'a probe is scheduled');
  link.runUntilTime(link.now + 3000);
  while (b.read() !== null);
  assert.ok(link.run(() => b.recvBuffered === 100, link.now + 10_000), 'the probe learned of the reopened window');
});

test('random configurations and faults (seed loop): every byte arrives and both ends close', () => {
  for (let seed = 1; seed <= 12; seed++) {
    const r = seededRandom(seed * 977);
    const pick = <T>(options: readonly T[]): T => options[Math.floor(r() * options.length)];
    const config = (): Partial<TcpConfig> => ({
      sack: r() < 0.6,
      timestamps: r() < 0.6,
      windowScaling: r() < 0.7,
      delayedAckMs: pick([0, 40]),
      congestion: pick(['cubic', 'newreno'] as const),
      recvBufferSize: pick([8192, 65536, 1 << 20]),
      sendBufferSize: pick([4096, 65536, 1 << 20]),
      sendSegmentMax: pick([0, 0, 16000, 65000]),
      mss: pick([536, 1460, 9000]),
      maxOutOfOrderSegments: pick([1, 4, 64]),
      maxOutOfOrderBytes: pick([3000, 100_000, 4 << 20]),
      timeWaitMs: 30_000,
      maxRtoMs: 10_000,
      maxRetransmissions: 30,
    });
    const faults = {
      seed,
      delayMs: pick([1, 5, 20]),
      loss: pick([0, 0.02, 0.1]),
      reorder: pick([0, 0.05, 0.3]),
      reorderDelayMs: pick([2, 10, 50]),
      duplicate: pick([0, 0.01, 0.1]),
    };
    const sizeA = Math.floor(r() * 200_000);
    const sizeB = Math.floor(r() * 200_000);
    const o = transfer(sizeA, sizeB, faults, config(), config(), 3_000_000, false, r() < 0.3);
    assertDelivered(o, sizeA, sizeB, seed);
  }
});
