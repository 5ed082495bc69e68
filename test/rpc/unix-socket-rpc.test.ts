// The daemons' Unix socket RPC with two real users: the test runs as root and speaks as another uid (nobody,
// 65534) from a child process, so the kernel's SO_PEERCRED is what decides, as it does between local users.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Server } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { DaemonVersionSchema, UserDaemon } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { createLogger } from '../../src/log/logger.js';
import { listenUnixRpc, peerKey, type SocketAccess } from '../../src/rpc/unix-socket-rpc.js';

const OTHER_UID = 65534;
const isRoot = process.getuid?.() === 0;

/** A Version RPC (Connect protocol, JSON) made by `uid` from a child process: its answer, or the error it got. */
function versionAs(uid: number, socketPath: string): Promise<string> {
  const script = `
    const req = require('node:http').request({ socketPath: ${JSON.stringify(socketPath)}, method: 'POST',
      path: '/${UserDaemon.typeName}/Version', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => console.log('answer ' + res.statusCode + ' ' + body));
    });
    req.on('error', (e) => console.log('error ' + e.code));
    req.end('{}');`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { uid, gid: uid, cwd: '/', timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** A user-daemon-like service answering Version with the caller's uid, on a socket any user may open (0666, in a 0755 dir). */
async function serve(t: TestContext, access: Partial<SocketAccess> = {}): Promise<{ path: string; logs: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'kt-rpc-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'rpc.sock');
  const logs: string[] = [];
  const server = await listenUnixRpc(
    path,
    (router) =>
      router.service(UserDaemon, {
        version: (_request, context) => create(DaemonVersionSchema, { version: `uid ${context.values.get(peerKey)?.uid}` }),
      }),
    { mode: 0o666, log: createLogger('debug', (line) => logs.push(line)), ...access },
  );
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, logs };
}

test('another user reaching the socket file is refused by the peer check, logged once, and the daemon serves on', { skip: !isRoot && 'needs root (a second uid)' }, async (t) => {
  const { path, logs } = await serve(t);
  for (let i = 0; i < 3; i++) assert.match(await versionAs(OTHER_UID, path), /^error (ECONNRESET|EPIPE)$/);
  assert.match(await versionAs(0, path), /^answer 200 .*"uid 0"/);
  const refusals = logs.filter((l) => l.includes('refused a connection from another user'));
  assert.equal(refusals.length, 1, logs.join(''));
  assert.equal(JSON.parse(refusals[0]!).uid, OTHER_UID);
});

test('the one other uid a daemon serves (the root daemon: the user who started it) gets answers, with its uid', { skip: !isRoot && 'needs root (a second uid)' }, async (t) => {
  const { path } = await serve(t, { peerUid: OTHER_UID });
  assert.match(await versionAs(OTHER_UID, path), new RegExp(`^answer 200 .*"uid ${OTHER_UID}"`));
});

test('the socket has its mode from the moment bind(2) makes it, whatever the umask (spy on net.Server#listen)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-rpc-'));
  const path = join(dir, 'rpc.sock');
  // bind(2) runs inside listen(): the file's mode right after it is what a connecting process could meet first.
  const prototype = Server.prototype as unknown as { listen: (...args: unknown[]) => Server };
  const listen = prototype.listen;
  let modeAtBind: number | undefined;
  prototype.listen = function (this: Server, ...args: unknown[]) {
    const server = listen.apply(this, args);
    if (args[0] === path) modeAtBind = lstatSync(path).mode & 0o777;
    return server;
  };
  const umask = process.umask(0);
  let server: Server;
  try {
    server = await listenUnixRpc(path, () => undefined, { mode: 0o600 });
  } finally {
    process.umask(umask);
    prototype.listen = listen;
  }
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(modeAtBind?.toString(8), '600');
  assert.equal((lstatSync(path).mode & 0o777).toString(8), '600');
  assert.equal(process.umask(), umask, 'the umask is restored');
});
