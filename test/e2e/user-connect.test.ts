// A normal user connects: unprivileged accounts made for this run (one with a sudoers rule scoped to exactly the
// root daemon's command, one without) run `kubetun connect` in the sandbox workstation with no terminal, as a
// developer's script or IDE would. The daemons' sockets admit only their users; the accounts, their homes, the
// sudoers file and their daemon directories are removed afterwards, whatever the outcome.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, lstatSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sudoersRule } from '../../src/cli/daemon-launcher.js';
import { rootDaemonSocket, rootRunDir, userDaemonSocket } from '../../src/local-paths.js';
import { sandboxConfig, sandboxDown, sandboxUp, workstationCommand } from '../../src/sandbox/index.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NAME = `ktu${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const SUDOERS = `/etc/sudoers.d/kubetun-test-${NAME}`;

interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function commandMissing(): string | null {
  for (const tool of ['sudo', 'visudo', 'useradd', 'userdel', 'setpriv', 'script']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (scripts/setup.sh installs sudo)`;
    }
  }
  return null;
}

function execute(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
    // No input, as from a script: a command that reads it (sudo's password prompt) gets end-of-file.
    child.stdin?.end();
  });
}

/** Runs `command` in the workstation namespace as `account`, with nothing of this process's environment but `env`. */
function as(account: Account, command: string[], env: Record<string, string> = {}): Promise<Run> {
  const inWorkstation = workstationCommand(config, [
    'setpriv', `--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--reset-env',
    'env', `KUBECONFIG=${account.home}/kubeconfig`, `KUBETUN_SANDBOX=${NAME}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...command,
  ]);
  return execute(inWorkstation.file, inWorkstation.args, { PATH: process.env.PATH });
}

const kubetunAs = (account: Account, ...args: string[]): Promise<Run> => as(account, [process.execPath, KUBETUN, ...args]);

/** A Connect-protocol JSON call made by `account` on `socket`: "status body", or "error CODE" when the socket refuses. */
function rpcAs(account: Account, socket: string, method: string, body: object): Promise<Run> {
  const script = `
    const req = require('node:http').request({ socketPath: ${JSON.stringify(socket)}, method: 'POST', path: ${JSON.stringify(method)},
      headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''; res.on('data', (c) => (text += c)); res.on('end', () => console.log(res.statusCode + ' ' + text));
    });
    req.on('error', (e) => console.log('error ' + e.code));
    req.end(${JSON.stringify(JSON.stringify(body))});`;
  return as(account, [process.execPath, '-e', script]);
}

function createAccount(name: string): Account {
  execFileSync('useradd', ['--create-home', '--home-dir', `/home/${name}`, '--shell', '/usr/sbin/nologin', '--user-group', name]);
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
  const home = `/home/${name}`;
  // The workstation's admin kubeconfig (credentials embedded), readable by the account alone.
  copyFileSync(config.workstationKubeconfig, `${home}/kubeconfig`);
  chownSync(`${home}/kubeconfig`, uid, gid);
  return { name, uid, gid, home };
}

function removeAccount(account: Account | undefined): void {
  if (account === undefined) return;
  // Processes of an account made for this run were started by this test (a daemon left by a failed step).
  const pids = execFileSync('sh', ['-c', `pgrep -u ${account.uid} || true`], { encoding: 'utf8' }).split('\n').filter((p) => p !== '');
  for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  execFileSync('userdel', ['--force', '--remove', account.name], { stdio: 'ignore' });
  rmSync(`/tmp/kubetun-${account.uid}`, { recursive: true, force: true });
}

const mode = (path: string): string => (lstatSync(path).mode & 0o777).toString(8);

describe('a normal user connects through sudo; other users cannot use its daemons', { skip: controlPlaneSkipReason() ?? commandMissing() ?? false }, () => {
  let alice: Account | undefined;
  let bob: Account | undefined;
  const userDir = (account: Account): string => `/tmp/kubetun-${account.uid}/sandbox-${NAME}`;
  const rootSocket = rootDaemonSocket(rootRunDir(NAME));

  before(async () => {
    await sandboxUp(NAME);
    const installed = await execute('ip', ['netns', 'exec', config.namespaces.workstation, process.execPath, KUBETUN, 'install'], { ...process.env, ...config.workstationEnv });
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    alice = createAccount(`kta${process.pid}`);
    bob = createAccount(`ktb${process.pid}`);
    writeFileSync(SUDOERS, `${sudoersRule(alice.name, NAME)}\n`, { mode: 0o440 });
    execFileSync('visudo', ['-c', '-q', '-f', SUDOERS]);
  });

  after(async () => {
    if (alice !== undefined) await kubetunAs(alice, 'quit');
    rmSync(SUDOERS, { force: true });
    await sandboxDown(NAME);
    removeAccount(alice);
    removeAccount(bob);
  });

  test('KUBETUN_SANDBOX=../../tmp/x is refused before anything starts', async () => {
    const bad = await as(alice!, [process.execPath, KUBETUN, 'connect'], { KUBETUN_SANDBOX: '../../tmp/x' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^kubetun: KUBETUN_SANDBOX "\.\.\/\.\.\/tmp\/x" is not a sandbox name/);
    assert.equal(existsSync('/tmp/x'), false);
  });

  test('the user with the sudoers rule connects with no terminal and reaches http://echo.default', async () => {
    const connected = await kubetunAs(alice!, 'connect');
    assert.equal(connected.code, 0, connected.stderr);
    const curl = await as(alice!, ['curl', '-sS', '-m', '5', 'http://echo.default']);
    assert.equal(curl.code, 0, curl.stderr);
    assert.match(curl.stdout, /^pod: echo-/m);
  });

  test("the daemons' directories, sockets and logs: the user's 0700, root's 0755 with a 0600 socket of the user", () => {
    const dir = userDir(alice!);
    assert.equal(lstatSync(dir).uid, alice!.uid);
    assert.equal(mode(dir), '700');
    assert.equal(mode(`/tmp/kubetun-${alice!.uid}`), '700');
    assert.equal(mode(userDaemonSocket(dir)), '600');
    assert.equal(mode(`${dir}/user-daemon.log`), '600');
    assert.equal(lstatSync(rootRunDir(NAME)).uid, 0);
    assert.equal(mode(rootRunDir(NAME)), '755');
    assert.equal(lstatSync(rootSocket).uid, alice!.uid);
    assert.equal(mode(rootSocket), '600');
    assert.equal(mode(`${rootRunDir(NAME)}/root-daemon.log`), '600');
  });

  test("the session id is in neither daemon's log", async () => {
    const status = await kubetunAs(alice!, 'status', '--output', 'json');
    const session = (JSON.parse(status.stdout) as { sessionId: string }).sessionId;
    assert.ok(session.length > 8, status.stdout);
    for (const log of [`${userDir(alice!)}/user-daemon.log`, `${rootRunDir(NAME)}/root-daemon.log`]) {
      const text = readFileSync(log, 'utf8');
      assert.match(text, /"msg":"connected"/);
      assert.equal(text.includes(session), false, `${log} names the session id`);
    }
  });

  test('another user can open neither socket, and both daemons keep serving their user', async () => {
    const attempts = [
      [userDaemonSocket(userDir(alice!)), '/kubetun.daemon.v1.UserDaemon/Quit'],
      [rootSocket, '/kubetun.daemon.v1.RootDaemon/Quit'],
    ] as const;
    for (const [socket, method] of attempts) {
      const run = await rpcAs(bob!, socket, method, {});
      assert.equal(run.stdout.trim(), 'error EACCES', `${socket}: ${run.stdout}${run.stderr}`);
    }
    const status = await kubetunAs(alice!, 'status');
    assert.match(status.stdout, /Status: +connected/);
    assert.match(status.stdout, /Device: +kt0/);
  });

  test("the root daemon dials no unix: socket but its caller's own forwarder", async () => {
    const run = await rpcAs(alice!, rootSocket, '/kubetun.daemon.v1.RootDaemon/Connect', { managerUrl: `unix:${rootSocket}`, sessionId: 'x' });
    assert.match(run.stdout, /^400 .*invalid_argument.*manager URL unix:.*not a user daemon's manager-forward\.sock/, run.stdout + run.stderr);
    const curl = await as(alice!, ['curl', '-sS', '-m', '5', 'http://echo.default']);
    assert.equal(curl.code, 0, curl.stderr);
  });

  test('the user without a sudoers rule, and no terminal, is told how to fix it', async () => {
    const run = await kubetunAs(bob!, 'connect');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /sudo asked for a password with no terminal/);
    assert.match(run.stderr, /run `kubetun connect` once in a terminal/);
    assert.ok(run.stderr.includes(sudoersRule(bob!.name, NAME)), run.stderr);
  });

  test('with a terminal, sudo asks for the password on it', async () => {
    // script(1) gives the command a terminal; its input ends at once, so sudo gets no password.
    const run = await as(bob!, ['script', '-qec', `${process.execPath} ${KUBETUN} connect`, '/dev/null'], { SHELL: '/bin/sh' });
    assert.notEqual(run.code, 0);
    assert.match(run.stdout, new RegExp(`\\[sudo\\] password for ${bob!.name}:`));
    assert.match(run.stdout, /the root daemon did not start through sudo .*see sudo's messages above/);
  });

  test('quit leaves nothing behind: no daemon, no device, no route, resolv.conf as it was', async () => {
    const quit = await kubetunAs(alice!, 'quit');
    assert.equal(quit.code, 0, quit.stderr);
    for (let i = 0; i < 50 && existsSync(rootSocket); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(existsSync(rootSocket), false, 'the root daemon socket is left');
    assert.equal(existsSync(userDaemonSocket(userDir(alice!))), false, 'the user daemon socket is left');
    const ws = workstationCommand(config, ['ip', 'link', 'show', 'kt0']);
    assert.notEqual((await execute(ws.file, ws.args, process.env)).code, 0, 'the TUN device kt0 is left');
    const routes = workstationCommand(config, ['ip', '-j', 'route', 'show', 'table', 'all']);
    assert.doesNotMatch((await execute(routes.file, routes.args, process.env)).stdout, /"kt0"/);
    const resolv = workstationCommand(config, ['cat', '/etc/resolv.conf']);
    assert.doesNotMatch((await execute(resolv.file, resolv.args, process.env)).stdout, /kubetun|198\.18\.255\.53/);
  });
});
