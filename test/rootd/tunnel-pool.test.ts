import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../src/log/logger.js';
import { TunnelPool } from '../../src/rootd/tunnel-pool.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { roundTrip, startTcpEcho, startTunnel, type TunnelFixture } from '../tunnel/tunnel-fixture.js';

let tunnel: TunnelFixture;
let echo: Awaited<ReturnType<typeof startTcpEcho>>;

before(async () => {
  tunnel = await startTunnel();
  echo = await startTcpEcho();
});

after(async () => {
  await tunnel.close();
  await echo.close();
});

/** Connections to the fixture's manager under its session, each kept in `opened`. */
function connector(opened: TunnelClient[]): () => Promise<TunnelClient> {
  return async () => {
    const client = await TunnelClient.connect(tunnel.manager.url, { sessionId: tunnel.client.sessionId! });
    opened.push(client);
    return client;
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 5_000) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('flows spread evenly over the main connection and the members, each on the one with the fewest open streams', async () => {
  const opened: TunnelClient[] = [];
  const pool = new TunnelPool(3, connector(opened), silentLogger);
  try {
    await until(() => pool.connected === 3, 'three members');
    const streams = [];
    for (let i = 0; i < 8; i++) streams.push(await pool.pick(tunnel.client)!.openTcp('127.0.0.1', echo.port));
    assert.deepEqual([tunnel.client, ...opened].map((client) => client.openStreams), [2, 2, 2, 2]);
    const data = randomBytes(100_000);
    for (const back of await Promise.all(streams.map((stream) => roundTrip(stream, data)))) assert.ok(back.equals(data));
    await until(() => opened.every((client) => client.openStreams === 0), 'the streams to close');
  } finally {
    pool.close();
  }
  assert.ok(opened.every((client) => client.closed), 'close() closes every member');
});

test('a lost member is skipped at once and reconnected; flows on the others go on', async () => {
  const opened: TunnelClient[] = [];
  const pool = new TunnelPool(2, connector(opened), silentLogger);
  try {
    await until(() => pool.connected === 2, 'two members');
    const [lost, kept] = opened as [TunnelClient, TunnelClient];
    const onKept = await kept.openTcp('127.0.0.1', echo.port);
    const disconnected = once(lost, 'disconnected');
    lost.close();
    await disconnected;
    assert.equal(pool.connected, 1);
    // With the main connection down (null), a flow goes to the member still up.
    assert.equal(pool.pick(null), kept);
    const data = randomBytes(50_000);
    assert.ok((await roundTrip(onKept, data)).equals(data));
    await until(() => pool.connected === 2, 'the lost member to reconnect');
    assert.equal(opened.length, 3);
  } finally {
    pool.close();
  }
});

test('a member that cannot connect is retried with backoff and never picked; close() stops the retries', async () => {
  let attempts = 0;
  const pool = new TunnelPool(
    1,
    async () => {
      attempts++;
      throw new Error('port-forward refused');
    },
    silentLogger,
  );
  await sleep(1_000);
  // 250 + 500 ms of backoff fit in the second: 3 attempts, not one per turn.
  assert.ok(attempts >= 2 && attempts <= 3, `${attempts} attempts`);
  assert.equal(pool.connected, 0);
  assert.equal(pool.pick(tunnel.client), tunnel.client);
  assert.equal(pool.pick(null), null);
  pool.close();
  const before = attempts;
  await sleep(1_200);
  assert.equal(attempts, before);
});

test('a member that connects after close() is closed at once, not kept', async () => {
  const opened: TunnelClient[] = [];
  const connect = connector(opened);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const pool = new TunnelPool(
    1,
    async () => {
      await gate;
      return connect();
    },
    silentLogger,
  );
  pool.close();
  release();
  await until(() => opened.length === 1, 'the late connection');
  await until(() => opened[0]!.closed, 'the late connection to close');
  assert.equal(pool.connected, 0);
});
