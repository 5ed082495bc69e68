import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { upstreamDnsConfig, upstreamResolvConf } from '../../src/sandbox/dns.js';
import { findBinary } from '../../src/sandbox/host-commands.js';
import { sandboxConfig } from '../../src/sandbox/sandbox-config.js';

const run = promisify(execFile);
const config = sandboxConfig('kts1');

function lines(text: string): string[] {
  return text.split('\n');
}

test('upstream resolver: only upstream.test records, every other name local (NXDOMAIN), on the node link addresses', () => {
  const text = lines(upstreamDnsConfig(config));
  assert.ok(text.includes('listen-address=198.18.0.1,2001:2::1'));
  assert.ok(text.includes('host-record=www.upstream.test,198.18.0.1,2001:2::1'));
  assert.ok(text.includes('local=/#/'));
  assert.ok(!text.some((l) => l.startsWith('server=')));
});

test('resolv.conf: the workstation and the node ask the upstream', () => {
  assert.equal(upstreamResolvConf(config), 'nameserver 198.18.0.1\n');
});

test('dnsmasq accepts the generated configuration', { skip: findBinary('dnsmasq') === null && 'dnsmasq is not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-dns-'));
  try {
    for (const [file, text] of [['upstream.conf', upstreamDnsConfig(config)]] as const) {
      writeFileSync(join(dir, file), text);
      const { stderr, stdout } = await run(findBinary('dnsmasq')!, ['--test', `--conf-file=${join(dir, file)}`]);
      assert.match(stdout + stderr, /syntax check OK/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
