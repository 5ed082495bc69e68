// The kube-proxy program's refusals: each says what was wrong, exits 2 (1 for commander's argument errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PROGRAM = fileURLToPath(new URL('../../../src/sandbox/kube-proxy/main.js', import.meta.url));

function run(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PROGRAM, ...args], { timeout: 10_000 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr });
    });
  });
}

test('a missing kubeconfig file is named', async () => {
  const r = await run(['--kubeconfig', '/nonexistent/kube.config']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /kube-proxy: the kubeconfig file \/nonexistent\/kube\.config \(from --kubeconfig\) does not exist/);
});

test('no --kubeconfig at all is refused', async () => {
  const r = await run([]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /required option '--kubeconfig <file>' not specified/);
});

test('a node address that is not an IP, a service CIDR that is not a CIDR, and a table name nft cannot take, are refused', async () => {
  const bad = await run(['--kubeconfig', '/x', '--node-address', '198.18.0']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /"198\.18\.0" is not an IPv4 or IPv6 address/);
  const badCidr = await run(['--kubeconfig', '/x', '--service-cidr', '10.96.0.0/33']);
  assert.notEqual(badCidr.code, 0);
  assert.match(badCidr.stderr, /"10\.96\.0\.0\/33" is not an IPv4 or IPv6 CIDR/);
  const table = await run(['--kubeconfig', '/x', '--table', 'my table']);
  assert.notEqual(table.code, 0);
  assert.match(table.stderr, /"my table" is not an nftables table name/);
});
