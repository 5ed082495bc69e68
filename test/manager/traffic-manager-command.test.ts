// The `kubetun traffic-manager` command as a process: usage errors, JSON logs, SIGTERM.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('bad flags and bad environment values exit with 2 and say which flag', () => {
  const badFlag = spawnSync(process.execPath, [main, 'traffic-manager', '--pod-cidr', '10.0.0.0/40'], { encoding: 'utf8' });
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /--pod-cidr/);
  const unknown = spawnSync(process.execPath, [main, 'traffic-manager', '--no-such-flag'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  const badEnv = spawnSync(process.execPath, [main, 'traffic-manager'], {
    encoding: 'utf8',
    env: { ...process.env, KUBETUN_SESSION_TTL: 'soon' },
  });
  assert.equal(badEnv.status, 2);
  assert.match(badEnv.stderr, /--session-ttl/);
});

test('h2c on an address that is not loopback, and a token file that is too short, exit with 2 before listening', () => {
  const open = spawnSync(process.execPath, [main, 'traffic-manager', '--listen', '0.0.0.0:0'], { encoding: 'utf8', env: { ...process.env, KUBETUN_SERVICE_CIDRS: '10.96.0.0/12' } });
  assert.equal(open.status, 2);
  assert.match(open.stderr, /--listen 0\.0\.0\.0:0 is not a loopback address, and a listener others can reach must use TLS with client authentication/);
  const dir = mkdtempSync(join(tmpdir(), 'kt-tm-'));
  try {
    writeFileSync(join(dir, 'token'), 'short\n');
    const args = ['traffic-manager', '--listen', '127.0.0.1:0', '--tls-cert', join(dir, 'c'), '--tls-key', join(dir, 'k'), '--client-token-file', join(dir, 'token')];
    const short = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, KUBETUN_SERVICE_CIDRS: '10.96.0.0/12' } });
    assert.equal(short.status, 2);
    assert.match(short.stderr, /--client-token-file .*token: the token must be one line of at least 16 visible ASCII characters/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('it logs JSON lines to stderr, serves, and stops on SIGTERM with 0', async () => {
  const child = spawn(process.execPath, [main, 'traffic-manager', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, KUBETUN_SERVICE_CIDRS: '10.96.0.0/12' },
  });
  let stderr = '';
  const listening = new Promise<Record<string, unknown>>((resolve) =>
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const line = stderr.split('\n').find((l) => l.includes('listening'));
      if (line) resolve(JSON.parse(line) as Record<string, unknown>);
    }),
  );
  const entry = await listening;
  assert.equal(entry.level, 'info');
  assert.match(String(entry.url), /^http:\/\/127\.0\.0\.1:\d+$/);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
