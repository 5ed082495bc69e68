// The manager's health endpoint: /healthz and /readyz only, and the --health-listen flag that starts it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startHealthEndpoint } from '../../src/manager/health-endpoint.js';
import { managerSettings } from '../../src/manager/manager-config.js';
import { silentLogger } from '../../src/log/logger.js';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function get(port: number, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/healthz answers at once, /readyz only after markReady; nothing else is served', async () => {
  const health = await startHealthEndpoint({ host: '127.0.0.1', port: 0, log: silentLogger });
  try {
    assert.deepEqual(await get(health.port, '/healthz'), { status: 200, body: 'ok\n' });
    assert.equal((await get(health.port, '/readyz')).status, 503);
    health.markReady();
    assert.deepEqual(await get(health.port, '/readyz'), { status: 200, body: 'ready\n' });
    assert.equal((await get(health.port, '/readyz?verbose')).status, 200);
    for (const path of ['/', '/kubetun.manager.v1.Manager/ArriveAsClient', '/healthz/../metrics', '//healthz']) {
      assert.equal((await get(health.port, path)).status, 404, path);
    }
    assert.equal((await get(health.port, '/healthz', { method: 'POST' })).status, 405);
    assert.equal((await get(health.port, '/healthz', { method: 'CONNECT' }).catch(() => ({ status: 0 }))).status !== 200, true);
    // A request with more header bytes than a probe ever sends is refused.
    const big = await get(health.port, '/healthz', { headers: { 'x-filler': 'a'.repeat(8192) } }).catch(() => ({ status: 0, body: '' }));
    assert.notEqual(big.status, 200);
  } finally {
    await health.close();
  }
});

test('connections held open by another pod never lock a probe out: the oldest is closed for a new one', { timeout: 30_000 }, async () => {
  const health = await startHealthEndpoint({ host: '127.0.0.1', port: 0, log: silentLogger });
  const held: Socket[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      const socket = connect({ host: '127.0.0.1', port: health.port });
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      held.push(socket);
    }
    assert.deepEqual(await get(health.port, '/healthz'), { status: 200, body: 'ok\n' });
    // The first one was closed by the server to make room (the test's timeout ends the wait if it never is).
    const first = held[0]!;
    if (!first.closed) await once(first, 'close');
  } finally {
    for (const socket of held) socket.destroy();
    await health.close();
  }
});

test('--health-listen: off by default, parsed like --listen, and never the tunnel port', () => {
  assert.equal(managerSettings({}, {}).health, undefined);
  assert.deepEqual(managerSettings({ healthListen: '[::]:8082' }, {}).health, { host: '::', port: 8082 });
  assert.deepEqual(managerSettings({}, { KUBETUN_HEALTH_LISTEN: '127.0.0.1:9000' }).health, { host: '127.0.0.1', port: 9000 });
  assert.throws(() => managerSettings({ healthListen: 'nope' }, {}), /--health-listen "nope" is not HOST:PORT/);
  assert.throws(() => managerSettings({ listen: '127.0.0.1:8081', healthListen: '[::]:8081' }, {}), /--health-listen .* uses the tunnel's port 8081/);
});

test('traffic-manager --health-listen serves /readyz once the manager has its cluster info and listens', async () => {
  const child = spawn(process.execPath, [main, 'traffic-manager', '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, KUBETUN_SERVICE_CIDRS: '10.96.0.0/12' },
  });
  try {
    let stderr = '';
    const lines: Record<string, unknown>[] = [];
    const started = new Promise<void>((resolve) =>
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const complete = stderr.split('\n');
        stderr = complete.pop()!;
        for (const line of complete) lines.push(JSON.parse(line) as Record<string, unknown>);
        if (lines.some((l) => l.msg === 'health endpoint listening') && lines.some((l) => typeof l.url === 'string')) resolve();
      }),
    );
    await started;
    const port = Number(lines.find((l) => l.msg === 'health endpoint listening')!.port);
    // Ready is set right after the tunnel listens: wait for it without a time bound of our own.
    let ready = await get(port, '/readyz');
    while (ready.status !== 200) {
      await new Promise((r) => setTimeout(r, 50));
      ready = await get(port, '/readyz');
    }
    assert.equal((await get(port, '/healthz')).status, 200);
  } finally {
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  }
});
