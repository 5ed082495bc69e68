// The cluster-dns program's refusals: each says what was wrong and what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { requireRoot, TestNetns } from '../../helpers/netns.js';
import { unreachableKubeconfig } from './service-account.js';

const PROGRAM = fileURLToPath(new URL('../../../src/sandbox/cluster-dns/main.js', import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PROGRAM, ...args], { timeout: 10_000, env: { PATH: process.env.PATH, ...env } }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr });
    });
  });
}

test('outside a pod without --kubeconfig: exit 2, naming the missing in-cluster config', async () => {
  const r = await run(['--upstream', '127.0.0.1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cluster-dns: not in a pod \(KUBERNETES_SERVICE_HOST\/PORT are not set\): pass --kubeconfig/);
});

test('bad --upstream, --listen and --port values are refused', async () => {
  for (const [args, message] of [
    [['--upstream', 'resolver.example'], /"resolver\.example" is not an upstream resolver/],
    [['--listen', 'any'], /"any" is not an IPv4 or IPv6 address/],
    [['--port', '0'], /use a port number from 1 to 65535/],
    [['--cluster-domain', 'bad_domain'], /"bad_domain" is not a domain name/],
  ] as const) {
    const r = await run([...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message);
  }
});

test('an address that is not this host\'s: exit 2, saying to pass an address of an interface', async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kt-cdns-main-'));
  const ns = await TestNetns.create('cdnsmain');
  try {
    const kubeconfig = unreachableKubeconfig(dir);
    const r = await ns.exec(process.execPath, [PROGRAM, '--kubeconfig', kubeconfig, '--listen', '198.18.0.99', '--upstream', '127.0.0.1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot listen on UDP 198\.18\.0\.99:53: that address is not one of this host: pass --listen with an address of an interface here/);
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
