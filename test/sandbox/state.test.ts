import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, podEnvironment, startProcess, stopProcess } from '../../src/sandbox/processes.js';
import { SANDBOX_STATE_ROOT, sandboxConfig } from '../../src/sandbox/sandbox-config.js';
import { SandboxError } from '../../src/sandbox/sandbox-errors.js';
import { TestNetns } from '../helpers/netns.js';
import { acquireLock, emptyState, readState, stateFilePath, writeState } from '../../src/sandbox/state.js';

test('state survives a write and a read; a missing or corrupt file reads as no state', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-state-'));
  try {
    const config = { ...sandboxConfig('ktstate'), stateDir: dir };
    assert.equal(readState(config), null);
    const state = emptyState(config);
    state.namespaces.push('ktstate-node');
    state.processes['echo-x'] = {
      id: 'echo-x',
      netns: 'ktstate-pod-echo-x',
      pid: 42,
      startTime: '123',
      command: ['node', 'echo-server.js'],
      logFile: `${dir}/logs/echo-x.log`,
      startedAt: new Date(0).toISOString(),
      essential: true,
    };
    writeState(config, state);
    assert.deepEqual(readState(config), state);
    writeFileSync(stateFilePath(config), '{"version": 1, "proc');
    assert.equal(readState(config), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pod does not inherit the caller environment, except PATH, locale and KUBETUN_* settings', () => {
  const env = podEnvironment({ POD_NAME: 'p', PATH: '/pod/bin' }, { PATH: '/usr/bin', HOME: '/root', NODE_OPTIONS: '--inspect', KUBETUN_LOG: 'debug', LANG: 'C.UTF-8' });
  assert.deepEqual(env, { PATH: '/pod/bin', KUBETUN_LOG: 'debug', LANG: 'C.UTF-8', POD_NAME: 'p' });
});

test('the lock is exclusive, also within one process, and a dead holder’s lock is taken over', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip(`needs root: the lock lives in ${SANDBOX_STATE_ROOT}`);
    return;
  }
  const config = sandboxConfig(`ktlock${process.pid % 1000}`);
  const path = `${SANDBOX_STATE_ROOT}/${config.name}.lock`;
  const release = await acquireLock(config);
  try {
    await assert.rejects(acquireLock(config, 150), (e: unknown) => e instanceof SandboxError && e.code === 'BUSY');
  } finally {
    release();
  }
  const child = spawn('true');
  const deadPid = await new Promise<number>((resolve) => child.once('exit', () => resolve(child.pid!)));
  writeFileSync(path, String(deadPid));
  const again = await acquireLock(config, 150);
  assert.equal(readFileSync(path, 'utf8'), String(process.pid));
  again();
});

test('a started process is alive under its pid and start time, and stopProcess ends it', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: processes start through ip netns exec');
    return;
  }
  const ns = await TestNetns.create('sbxproc');
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-proc-'));
  try {
    const record = await startProcess({
      id: 'sleeper',
      netns: ns.name,
      command: 'sleep',
      args: ['30'],
      env: {},
      cwd: dir,
      logFile: `${dir}/sleeper.log`,
      essential: true,
    });
    assert.equal(isAlive(record), true);
    assert.equal(isAlive({ pid: record.pid, startTime: `${record.startTime}0` }), false, 'another start time is another process');
    assert.equal(await stopProcess(record), true);
    assert.equal(isAlive(record), false);
    assert.equal(await stopProcess(record), false, 'stopping it again does nothing');
    assert.match(readFileSync(`${dir}/sleeper.log`, 'utf8'), /kubetun sandbox starts in .*: sleep 30/);
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
