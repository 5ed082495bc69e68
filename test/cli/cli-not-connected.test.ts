// The CLI with no user daemon running (a fresh KUBETUN_RUN_DIR): status prints a disconnected status (text and
// json, with its empty intercepts), and the intercept commands fail naming `kubetun connect`, as {"error"} in json.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function kubetun(runDir: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBETUN_RUN_DIR: runDir };
  delete env.KUBETUN_SANDBOX;
  return spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
}

test('CLI without a user daemon: status (text, json) and the intercept commands say what to do', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-cli-'));
  const runDir = join(dir, 'run');
  try {
    const json = kubetun(runDir, 'status', '--output', 'json');
    assert.equal(json.status, 0, json.stderr);
    const status = JSON.parse(json.stdout) as { state: string; intercepts: unknown[] };
    assert.equal(status.state, 'disconnected');
    assert.deepEqual(status.intercepts, []);
    assert.equal(kubetun(runDir, 'status').stdout.trim(), 'Not connected. Run `kubetun connect`.');
    const intercept = kubetun(runDir, 'intercept', 'echo', '--port', '8080', '--output', 'json');
    assert.equal(intercept.status, 1);
    assert.deepEqual(JSON.parse(intercept.stdout), { error: 'not connected: run kubetun connect first' });
    const leave = kubetun(runDir, 'leave', 'echo');
    assert.equal(leave.status, 1);
    assert.equal(leave.stderr.trim(), 'kubetun: not connected: run kubetun connect first');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
