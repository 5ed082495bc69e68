// A large body goes through without being held: while the app reads nothing, the client can only get as far as
// the sockets' buffers allow; once the app reads, every byte arrives.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { listen, readUntil, startAgent } from './routing-fixture.js';

const BODY = 256 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/** Far above what loopback socket buffers hold (a few MiB each way), far below the body. */
const HELD_BOUND = 64 * 1024 * 1024;

/** Resolves once `value()` stayed the same for a few looks in a row: the transfer is stuck on backpressure. */
async function settled(value: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  while (same < 5) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = value();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

test('a large request body is streamed: the agent holds a bounded amount while the app does not read', async () => {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let received = 0;
  const app = await listen(
    net.createServer({ pauseOnConnect: true }, (s) => {
      void released.then(() => {
        s.on('data', (c: Buffer) => {
          received += c.length;
          const head = received - BODY;
          // The head is small and comes first; once the body's last byte is in, answer.
          if (head > 0 && head < 1024 && received > BODY) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        });
        s.resume();
      });
    }),
  );
  const agent = await startAgent({ app: app.port, intercepts: {} });
  const client = net.connect(agent.port, '127.0.0.1');
  let flushed = 0;
  try {
    const answer = readUntil(client, (t) => t.endsWith('ok'));
    client.write(`POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: ${BODY}\r\n\r\n`);
    const sending = (async () => {
      for (let sent = 0; sent < BODY; sent += CHUNK.length) {
        if (!client.write(CHUNK, () => (flushed += CHUNK.length))) await new Promise((resolve) => client.once('drain', resolve));
      }
    })();
    const held = await settled(() => flushed);
    assert.ok(held < HELD_BOUND, `the client got ${held} bytes out while the app read nothing`);
    release();
    await sending;
    assert.match(await answer, /^HTTP\/1\.1 200 OK/);
    assert.ok(received > BODY, 'every byte reached the app');
  } finally {
    client.destroy();
    await agent.close();
    await app.close();
  }
});
