// The dotenv and JSON environment files: what `set -a; . FILE` reads back (bash itself, property-tested), the
// names left out, mode 0600 even over an existing file, and no temporary file left behind.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ENV_NAME, formatDotenv, writeDotenvFile, writeJsonEnvFile } from '../../src/cli/env-files.js';

/** What bash sees after sourcing `file` with allexport, from an empty environment. */
function sourced(file: string): Map<string, string> {
  const out = execFileSync('env', ['-i', 'bash', '--noprofile', '--norc', '-c', 'set -a; . "$1"; env -0', 'bash', file]);
  const vars = new Map<string, string>();
  for (const entry of out.toString('utf8').split('\0').filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    vars.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return vars;
}

const tricky = fc.constantFrom('"', "'", '\\', '$', '`', '\n', '\r', ' ', '\t', '#', '!', '=', '$(', '${X}', '\\n', 'é', '😀', '*', '~', ';', '&', '|', '<', '>');
const value = fc.array(fc.oneof(tricky, fc.string({ unit: 'grapheme', maxLength: 6 })), { maxLength: 8 }).map((parts) => parts.join('').replace(/\0/g, ''));
// KT_ keeps clear of the variables bash sets or guards itself (PWD, SHLVL, UID, ...).
const name = fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/).map((n) => `KT_${n}`);

test('dotenv: bash `set -a; . FILE` reads back every value exactly (property)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-env-'));
  try {
    fc.assert(
      fc.property(fc.dictionary(name, value, { maxKeys: 8 }), (environment) => {
        const file = join(dir, 'app.env');
        assert.deepEqual(writeDotenvFile(file, environment), []);
        const seen = sourced(file);
        for (const [key, expected] of Object.entries(environment)) assert.equal(seen.get(key), expected, key);
      }),
      { numRuns: 150 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dotenv: plain values stay bare, others are double-quoted; names no shell takes are left out and reported', () => {
  const { text, skipped } = formatDotenv({ PLAIN: 'a-b_c.d:1/2@x%+=', SPACED: 'a b', 'a.b': '1', 'x-y': '2', '1X': '3', EMPTY: '' });
  assert.equal(text, 'EMPTY=\nPLAIN=a-b_c.d:1/2@x%+=\nSPACED="a b"\n');
  assert.deepEqual(skipped, ['1X', 'a.b', 'x-y']);
  for (const n of skipped) assert.ok(!ENV_NAME.test(n));
});

test('env files: mode 0600 even replacing a readable file, JSON read back exactly, no temporary file left', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubetun-env-'));
  try {
    const dotenv = join(dir, 'app.env');
    const json = join(dir, 'app.json');
    writeFileSync(dotenv, 'old', { mode: 0o644 });
    writeDotenvFile(dotenv, { SECRET: 's3cr3t' });
    const environment = { 'a.b': 'x', Z: 'line1\nline2', A: '"quoted"' };
    writeJsonEnvFile(json, environment);
    assert.equal(statSync(dotenv).mode & 0o777, 0o600);
    assert.equal(statSync(json).mode & 0o777, 0o600);
    assert.equal(readFileSync(dotenv, 'utf8'), 'SECRET=s3cr3t\n');
    assert.deepEqual(JSON.parse(readFileSync(json, 'utf8')), environment);
    assert.deepEqual(readdirSync(dir).sort(), ['app.env', 'app.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
