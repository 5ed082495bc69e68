import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { checkBinaries, findBinary, REQUIRED_BINARIES } from '../../src/sandbox/host-commands.js';
import { SandboxError } from '../../src/sandbox/sandbox-errors.js';

test('a missing binary is named with the Debian package that has it', () => {
  const installed = new Set(Object.keys(REQUIRED_BINARIES).filter((b) => b !== 'dnsmasq' && b !== 'redis-server'));
  assert.throws(
    () => checkBinaries((b) => (installed.has(b) ? `/usr/bin/${b}` : null)),
    (e: unknown) =>
      e instanceof SandboxError &&
      e.code === 'MISSING_BINARY' &&
      e.message.includes('dnsmasq (Debian package dnsmasq-base)') &&
      e.message.includes('redis-server (Debian package redis-server)') &&
      e.message.includes('apt-get install dnsmasq-base redis-server'),
  );
  assert.doesNotThrow(() => checkBinaries((b) => `/usr/bin/${b}`));
});

test('binaries are found on PATH and in the sbin folders a user PATH may lack', () => {
  assert.equal(findBinary('sh', '/bin'), '/bin/sh');
  assert.equal(findBinary('no-such-binary-kubetun', '/bin'), null);
  if (existsSync('/usr/sbin/ip') && !existsSync('/usr/local/sbin/ip')) assert.equal(findBinary('ip', ''), '/usr/sbin/ip');
});
