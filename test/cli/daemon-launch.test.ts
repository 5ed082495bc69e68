// What the launcher hands root and what it tells the user: the root daemon's options under sudo come from the
// command line only; `sudo kubetun connect` is warned about; the sudoers rule names exactly the root daemon command.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sudoConnectWarning } from '../../src/cli/connect-commands.js';
import { rootDaemonCommand, sudoersRule } from '../../src/cli/daemon-launcher.js';
import { DEFAULT_TUNNEL_CONNECTIONS, defaultRootDaemonOptions } from '../../src/rootd/root-daemon.js';

test('through sudo, no variable of the caller chooses where the root daemon writes or what it configures', () => {
  const env = {
    SUDO_UID: '1000',
    SUDO_GID: '1000',
    KUBETUN_RUN_DIR: '/tmp/evil',
    KUBETUN_SANDBOX: 'x/../../tmp/evil',
    KUBETUN_RESOLV_CONF: '/home/mallory/resolv.conf',
    KUBETUN_TUN_NAME: 'eth0',
    KUBETUN_TUNNEL_CONNECTIONS: '16',
  };
  const options = defaultRootDaemonOptions('ktc1', env);
  assert.equal(options.runDir, '/run/kubetun/sandbox-ktc1');
  assert.equal(options.resolvConfPath, '/etc/resolv.conf');
  assert.equal(options.tunName, 'kt0');
  assert.equal(options.tunnelConnections, DEFAULT_TUNNEL_CONNECTIONS);
  assert.equal(options.dnsMode, 'resolv.conf');
  assert.equal(options.clientUid, 1000);
  assert.equal(options.clientGid, 1000);
  assert.equal(defaultRootDaemonOptions(undefined, env).runDir, '/run/kubetun');
});

test('started by root itself, the KUBETUN_* variables still tune the root daemon, but never move its directory', () => {
  const options = defaultRootDaemonOptions(undefined, { KUBETUN_RUN_DIR: '/tmp/elsewhere', KUBETUN_TUN_NAME: 'kt9', KUBETUN_DNS_MODE: 'resolv.conf' });
  assert.equal(options.runDir, '/run/kubetun');
  assert.equal(options.tunName, 'kt9');
  assert.equal(options.dnsMode, 'resolv.conf');
  assert.equal(options.clientUid, undefined);
});

test('KUBETUN_TUNNEL_CONNECTIONS takes 1 to 16; anything else stops the root daemon with a sentence naming it', () => {
  assert.equal(defaultRootDaemonOptions(undefined, { KUBETUN_TUNNEL_CONNECTIONS: '1' }).tunnelConnections, 1);
  assert.equal(defaultRootDaemonOptions(undefined, { KUBETUN_TUNNEL_CONNECTIONS: '16' }).tunnelConnections, 16);
  for (const bad of ['0', '17', '-1', '2.5', ' 4', '1e1', '']) {
    assert.throws(() => defaultRootDaemonOptions(undefined, { KUBETUN_TUNNEL_CONNECTIONS: bad }), /KUBETUN_TUNNEL_CONNECTIONS must be a whole number from 1 to 16/);
  }
});

test('the sudoers rule names the user and exactly the command the launcher runs through sudo', () => {
  const command = rootDaemonCommand('ktc1');
  assert.deepEqual(command.slice(0, 1), [process.execPath]);
  assert.deepEqual(command.slice(2), ['root-daemon', '--daemonize', '--sandbox', 'ktc1']);
  assert.match(command[1]!, /\/cli\/main\.js$/);
  assert.equal(sudoersRule('alice', 'ktc1'), `alice ALL=(root) NOPASSWD: ${command.join(' ')}`);
  assert.equal(sudoersRule('alice', undefined), `alice ALL=(root) NOPASSWD: ${process.execPath} ${command[1]} root-daemon --daemonize`);
});

test('`sudo kubetun connect` gets a warning saying why it is not needed; root itself and users do not', () => {
  assert.match(sudoConnectWarning({ SUDO_UID: '1000' }, 0) ?? '', /not needed.*exec plugins .* run as root.*`kubetun connect` as yourself/s);
  assert.equal(sudoConnectWarning({}, 0), undefined);
  assert.equal(sudoConnectWarning({ SUDO_UID: '1000' }, 1000), undefined);
});

/** Every module `entry` loads, statically or with import(), within dist/src. */
function modulesLoadedBy(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*['"]([^'"]+)['"]/g)) {
      if (specifier!.startsWith('.')) pending.push(resolve(dirname(file), specifier!));
      else seen.add(specifier!);
    }
  }
  return seen;
}

test('the root daemon never loads the Kubernetes client or the kubeconfig code', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  // What `kubetun root-daemon [--daemonize]` loads besides commander: main.js's registration of the daemon commands.
  const loaded = [
    ...modulesLoadedBy(resolve(here, '../../src/rootd/root-daemon.js')),
    ...modulesLoadedBy(resolve(here, '../../src/cli/daemon-launcher.js')),
  ];
  const kube = loaded.filter((m) => m.startsWith('@kubernetes/') || /\/k8s\//.test(m));
  assert.deepEqual(kube, []);
  assert.ok(loaded.some((m) => m.endsWith('/rootd/network-session.js')), 'the walk follows imports');
});
