import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { SendBuffer } from '../../../src/netstack/tcp/tcp-send-buffer.js';
import { SimLink } from './sim-link.js';
import { randomBytes, sha256 } from './transfer-driver.js';

test('RFC 9293 §3.10.2 SEND: the send buffer owns what write() took; the caller may reuse its Buffer at once', () => {
  const buf = new SendBuffer(1 << 20);
  const scratch = Buffer.alloc(3000, 0x11);
  assert.equal(buf.write(scratch), 3000);
  scratch.fill(0xee);
  assert.equal(buf.write(scratch.subarray(0, 10)), 10);
  scratch.fill(0x22);
  assert.deepEqual(buf.peek(0, 3000), Buffer.alloc(3000, 0x11));
  assert.deepEqual(buf.peek(2995, 15), Buffer.concat([Buffer.alloc(5, 0x11), Buffer.alloc(10, 0xee)]));
});

test('RFC 9293 §3.10.2 SEND, §3.8.1 retransmission: a writer reusing one Buffer delivers the original bytes over a lossy, reordering link', () => {
  const total = 3 * 1024 * 1024;
  const source = randomBytes(total, 9);
  const link = new SimLink({ delayMs: 5, loss: 0.02, reorder: 0.05, reorderDelayMs: 8, duplicate: 0.01, seed: 9 });
  const config = tcpConfig({ timeWaitMs: 1000 });
  link.recording = true;
  link.a = TcpConnection.connect(40000, 80, 0x1234, 0, config);
  link.listener = { config, iss: 0xfffff000, autoAccept: true };
  const reused = Buffer.allocUnsafe(10_000);
  let written = 0;
  const received: Buffer[] = [];
  let receivedBytes = 0;
  link.onStep = () => {
    const a = link.a!;
    if (a.state === 'ESTABLISHED') {
      while (written < total) {
        const len = Math.min(reused.length, total - written);
        source.copy(reused, 0, written, written + len);
        const n = a.write(reused.subarray(0, len));
        // The application's next read into the same Buffer.
        reused.fill(0xee);
        written += n;
        if (n < len) break;
      }
      if (written === total) a.end();
    }
    const b = link.b;
    if (b !== null) {
      for (let d = b.read(); d !== null; d = b.read()) {
        received.push(Buffer.from(d));
        receivedBytes += d.length;
      }
    }
  };
  const done = link.run(() => receivedBytes === total && link.b?.state === 'CLOSE-WAIT', 600_000);
  assert.ok(done, `delivered ${receivedBytes} of ${total}`);
  const sent = new Set<number>();
  let retransmitted = 0;
  for (const { fromA, seg } of link.log) {
    if (!fromA || seg.payload.length === 0) continue;
    if (sent.has(seg.seq)) retransmitted++;
    sent.add(seg.seq);
  }
  assert.ok(retransmitted > 20, `retransmissions exercised: ${retransmitted}`);
  assert.equal(sha256(Buffer.concat(received)), sha256(source));
});

test('RFC 9293 §3.10.2 SEND: two send buffers sharing the chunk pool each return exactly what was written', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 300_000 }), fc.nat(), fc.nat()), { minLength: 1, maxLength: 40 }),
      (ops) => {
        const capacity = 2 * 1024 * 1024;
        const bufs = [new SendBuffer(capacity), new SendBuffer(capacity)];
        const streams = [Buffer.alloc(0), Buffer.alloc(0)];
        const bases = [0, 0];
        const reused = Buffer.allocUnsafe(300_000);
        let counter = 0;
        for (const [which, writeLen, peekAt, consumeRaw] of ops) {
          const k = which ? 1 : 0;
          const buf = bufs[k];
          for (let i = 0; i < writeLen; i++) reused[i] = (counter + i * 7) & 0xff;
          counter++;
          const n = buf.write(reused.subarray(0, writeLen));
          streams[k] = Buffer.concat([streams[k], reused.subarray(0, n)]);
          reused.fill(0xee);
          const avail = streams[k].length - bases[k];
          assert.equal(buf.length, avail);
          if (avail === 0) continue;
          const o = peekAt % avail;
          const l = Math.min(70_000, avail - o);
          assert.ok(buf.peek(o, l).equals(streams[k].subarray(bases[k] + o, bases[k] + o + l)));
          const c = consumeRaw % (avail + 1);
          buf.consume(c);
          bases[k] += c;
          const other = 1 - k;
          const otherAvail = streams[other].length - bases[other];
          if (otherAvail > 0) {
            const ol = Math.min(70_000, otherAvail);
            assert.ok(bufs[other].peek(0, ol).equals(streams[other].subarray(bases[other], bases[other] + ol)));
          }
        }
      },
    ),
    { numRuns: 60 },
  );
});
