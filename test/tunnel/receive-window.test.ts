import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { autotuneReceiveWindow, BdpWindow, BUSY_POLL_MS, IDLE_POLL_MAX_MS, PollBackoff } from '../../src/tunnel/receive-window.js';

const MiB = 1024 * 1024;

test('a window-limited transfer doubles the window each round trip, up to the cap', () => {
  const bdp = new BdpWindow(1 * MiB, 8 * MiB);
  // nghttp2 gives credit back in halves of the window: a transfer the window limits brings about half of it.
  assert.equal(bdp.sample(0.5 * MiB, 20), 2 * MiB);
  assert.equal(bdp.sample(1 * MiB, 20), 4 * MiB);
  assert.equal(bdp.sample(2 * MiB, 21), 8 * MiB);
  assert.equal(bdp.sample(4 * MiB, 20), null, 'past the cap');
});

test('a queue that lengthens the round trip stops the growth', () => {
  const bdp = new BdpWindow(1 * MiB, 32 * MiB);
  assert.equal(bdp.sample(0.6 * MiB, 20), 2 * MiB);
  assert.equal(bdp.sample(1.1 * MiB, 21), 4 * MiB);
  // The window is now above the BDP: the surplus queues and the round trip grows.
  assert.equal(bdp.sample(2 * MiB, 40), null);
  assert.equal(bdp.sample(2.5 * MiB, 60), null);
  assert.equal(bdp.window, 4 * MiB);
});

test('over a lossy long path, the round trips without a retransmission stall grow the window', () => {
  // Measured at 80 ms RTT and 0.5 % loss through the port-forward: stalled and clean round trips alternate.
  const bdp = new BdpWindow(2 * MiB, 32 * MiB);
  assert.equal(bdp.sample(101, 82.2), null, 'the first PING, before the transfer');
  assert.equal(bdp.sample(1_057_584, 82.8), 4 * MiB);
  assert.equal(bdp.sample(2_033_136, 182.4), null, 'a stall');
  assert.equal(bdp.sample(2_151_885, 88.9), 8 * MiB);
});

test('a burst read after a long round trip (a busy receiver catching up) does not grow the window', () => {
  const bdp = new BdpWindow(2 * MiB, 32 * MiB);
  assert.equal(bdp.sample(101, 20), null);
  assert.equal(bdp.sample(1 * MiB, 100), null);
  assert.equal(bdp.sample(2 * MiB, 20), null, 'over three times the bandwidth of the long round trip before it');
  assert.equal(bdp.sample(1 * MiB, 21), 4 * MiB, 'a short round trip after a short one counts again');
});

test('round trips that carry little of the window, or nothing, never grow it', () => {
  const bdp = new BdpWindow(4 * MiB, 32 * MiB);
  assert.equal(bdp.sample(1 * MiB, 1), null, 'a quarter of the window');
  assert.equal(bdp.sample(0, 1), null);
  assert.equal(bdp.sample(3 * MiB, 0), null, 'no round-trip time');
  assert.equal(bdp.window, 4 * MiB);
});

test('an idle connection checks ever less often, down to once per IDLE_POLL_MAX_MS; data brings the quick checks back', () => {
  const backoff = new PollBackoff();
  const idle = Array.from({ length: 8 }, () => backoff.next(false));
  assert.deepEqual(idle, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  assert.equal(idle.at(-1), IDLE_POLL_MAX_MS);
  assert.equal(backoff.next(true), BUSY_POLL_MS);
  assert.equal(backoff.next(true), BUSY_POLL_MS);
});

/** A server answering every stream with 48 MiB, and a client session to it; `run` gets the session, both close after. */
async function withTransferServer(run: (session: http2.ClientHttp2Session, pings: () => number) => Promise<void>): Promise<void> {
  const server = http2.createServer();
  let pings = 0;
  server.on('session', (session) => session.on('ping', () => pings++));
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end(Buffer.alloc(48 * MiB));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { settings: { initialWindowSize: 8 * MiB } });
  try {
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    await run(session, () => pings);
  } finally {
    session.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('a real HTTP/2 transfer grows the connection window, and an idle connection stops sampling', async () => {
  await withTransferServer(async (session, pings) => {
    const { bdp } = autotuneReceiveWindow(session, 256 * 1024, 16 * MiB);
    assert.equal(session.state.effectiveLocalWindowSize, 256 * 1024);
    const stream = session.request({ ':path': '/' });
    let received = 0;
    stream.on('data', (chunk: Buffer) => (received += chunk.length));
    await new Promise((resolve) => stream.once('end', resolve));
    assert.equal(received, 48 * MiB);
    assert.ok(bdp.window > 256 * 1024, `the window stayed at ${bdp.window}`);
    assert.equal(session.state.effectiveLocalWindowSize, bdp.window);
    assert.ok(pings() > 0);
    // The round trips right after the transfer may still carry its tail; after them, sampling stops.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const settled = pings();
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(pings(), settled, `${pings() - settled} pings on an idle connection`);
  });
});

test('after a long idle time a new stream brings the quick checks back: its transfer grows the window', async () => {
  await withTransferServer(async (session) => {
    const tuner = autotuneReceiveWindow(session, 256 * 1024, 16 * MiB);
    // Idle checks back off to a second apart: a transfer of under a second could start and end between two.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const stream = session.request({ ':path': '/' });
    tuner.streamOpened();
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    assert.ok(tuner.bdp.window > 256 * 1024, `the window stayed at ${tuner.bdp.window}`);
  });
});
