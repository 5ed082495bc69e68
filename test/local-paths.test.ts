// The daemons' directories: the user's own (0700, never one someone else prepared) and root's (no caller variable
// moves it), with real files, owners and links in a scratch folder.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ensureOwnedDir, LocalPathError, rootRunDir, sandboxName, userRunDir, userRunDirPath } from '../src/local-paths.js';

const uid = process.getuid?.() ?? 0;
const isRoot = uid === 0;

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-paths-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a sandbox name that is a path is refused with the variable named', () => {
  for (const name of ['../../tmp/x', 'x/../../tmp/evil', 'A', '.', 'x'.repeat(33)]) {
    assert.throws(() => sandboxName({ KUBETUN_SANDBOX: name }), (e: Error) => e instanceof LocalPathError && /KUBETUN_SANDBOX ".*" is not a sandbox name/.test(e.message));
  }
  assert.equal(sandboxName({ KUBETUN_SANDBOX: 'ktc12' }), 'ktc12');
});

test("the root daemon's directory is /run/kubetun, per sandbox below it", () => {
  assert.equal(rootRunDir(undefined), '/run/kubetun');
  assert.equal(rootRunDir('ktc1'), '/run/kubetun/sandbox-ktc1');
});

test("the user's directory: $XDG_RUNTIME_DIR/kubetun when it is the user's own, else /tmp/kubetun-<uid>", (t) => {
  const runtime = join(scratch(t), 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  assert.equal(userRunDirPath({ XDG_RUNTIME_DIR: runtime }), join(runtime, 'kubetun'));
  assert.equal(userRunDirPath({ XDG_RUNTIME_DIR: runtime, KUBETUN_SANDBOX: 'ktc1' }), join(runtime, 'kubetun', 'sandbox-ktc1'));
  assert.equal(userRunDirPath({}), `/tmp/kubetun-${uid}`);
  const link = `${runtime}-link`;
  symlinkSync(runtime, link);
  assert.equal(userRunDirPath({ XDG_RUNTIME_DIR: link }), `/tmp/kubetun-${uid}`, 'a symbolic link is not used');
  chmodSync(runtime, 0o777);
  assert.equal(userRunDirPath({ XDG_RUNTIME_DIR: runtime }), `/tmp/kubetun-${uid}`, 'a directory others can write to is not used');
  assert.equal(userRunDirPath({ KUBETUN_RUN_DIR: '/some/dir', XDG_RUNTIME_DIR: runtime }), '/some/dir');
});

test("the user's directory is made 0700 under any umask", (t) => {
  const base = join(scratch(t), 'kubetun');
  const umask = process.umask(0);
  try {
    assert.equal(userRunDir({ KUBETUN_RUN_DIR: base }), base);
  } finally {
    process.umask(umask);
  }
  assert.equal(lstatSync(base).mode & 0o777, 0o700);
});

test('a directory someone else prepared is refused: a link, loose modes, another owner', { skip: !isRoot && 'needs root (chown)' }, (t) => {
  const root = scratch(t);
  const refused = (dir: string, why: RegExp) =>
    assert.throws(() => userRunDir({ KUBETUN_RUN_DIR: dir }), (e: Error) => e instanceof LocalPathError && why.test(e.message) && e.message.includes(dir));
  const loose = join(root, 'loose');
  mkdirSync(loose);
  chmodSync(loose, 0o755);
  refused(loose, /has mode 755, not 700.*remove it/);
  const planted = join(root, 'planted');
  mkdirSync(planted, { mode: 0o700 });
  chownSync(planted, 65534, 65534);
  refused(planted, /belongs to uid 65534, not 0/);
  const target = join(root, 'target');
  mkdirSync(target, { mode: 0o700 });
  symlinkSync(target, join(root, 'link'));
  refused(join(root, 'link'), /is a symbolic link/);
  assert.throws(() => ensureOwnedDir(join(root, 'missing', 'dir'), 0, 0o700), /cannot create .*missing\/dir/);
});
