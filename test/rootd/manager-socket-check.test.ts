// Which `unix:` manager URLs the root daemon dials for a caller: only that caller's own forwarder socket, checked
// on real files, owners and links (uid 65534 plays the user; the test runs as root to chown).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkManagerSocket } from '../../src/rootd/manager-socket-check.js';

const USER = 65534;

test("a unix: manager URL is accepted only as the caller's own manager-forward.sock", { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'kt-msock-'));
  chmodSync(base, 0o755);
  const server = createServer();
  t.after(() => {
    server.close();
    rmSync(base, { recursive: true, force: true });
  });
  const dir = join(base, 'user');
  mkdirSync(dir, { mode: 0o700 });
  const socket = join(dir, 'manager-forward.sock');
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const rootsOwn = join(dir, 'root.sock');
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(rootsOwn, resolve));
  t.after(() => other.close());
  chownSync(dir, USER, USER);

  assert.match(checkManagerSocket(socket, USER) ?? '', /not a socket of uid 65534/, 'a socket of root in the user directory');
  chownSync(socket, USER, USER);
  assert.equal(checkManagerSocket(socket, USER), undefined);
  assert.match(checkManagerSocket(socket, 1000) ?? '', /is not a directory of uid 1000 with mode 700/);
  assert.match(checkManagerSocket(rootsOwn, USER) ?? '', /not a user daemon's manager-forward\.sock/);
  assert.match(checkManagerSocket('/run/kubetun/root-daemon.sock', USER) ?? '', /not a user daemon's manager-forward\.sock/);
  assert.match(checkManagerSocket(`${dir}/../user/manager-forward.sock`, USER) ?? '', /not an absolute, normalized path/);
  assert.match(checkManagerSocket('manager-forward.sock', USER) ?? '', /not an absolute, normalized path/);
  symlinkSync(dir, join(base, 'link'));
  assert.match(checkManagerSocket(join(base, 'link', 'manager-forward.sock'), USER) ?? '', /link is missing or a symbolic link/);
  chmodSync(dir, 0o755);
  assert.match(checkManagerSocket(socket, USER) ?? '', /is not a directory of uid 65534 with mode 700/);
});
