// Fuzzes what the traffic manager reads from a CONNECT request: the `:authority` (TCP) and the connect-udp
// `:path`. Both signal bad input by returning undefined, so nothing may be thrown; what they accept must be a
// non-empty host and a port from 1 to 65535, and no input is slow.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz } from './fuzz-harness.js';
import { connectUdpPath, formatAuthority, parseAuthority, parseConnectUdpPath, type Target } from '../../src/tunnel/protocol.js';

/** HTTP/2 header values reach the manager as latin1 strings: every byte is a character. */
function text(input: Buffer): string {
  return input.toString('latin1');
}

function assertTarget(target: Target | undefined): void {
  if (target === undefined) return;
  assert.ok(target.host.length > 0, 'an accepted target has a host');
  assert.ok(Number.isInteger(target.port) && target.port >= 1 && target.port <= 65535, `port ${target.port} accepted`);
}

const TARGETS: Array<[string, number]> = [
  ['10.96.0.10', 53],
  ['fd10:96::a', 443],
  ['::ffff:10.1.2.3', 1],
  ['echo.default.svc.cluster.local', 65535],
  ['host with space/and%slash', 8080],
];

const TOKENS = ['[', ']', ':', '::', '%', '%2F', '%3A', '%zz', '/', '0', '65535', '65536', '00080', '.well-known', '\u00ff'].map((w) =>
  Buffer.from(w, 'latin1'),
);

test('fuzz: CONNECT :authority', (t) => {
  fuzz(
    {
      name: 'authority',
      corpus: TARGETS.map(([host, port]) => Buffer.from(formatAuthority(host, port), 'latin1')),
      dictionary: TOKENS,
      maxLength: 4096,
      run: (input) => assertTarget(parseAuthority(text(input))),
      isParserError: () => false,
    },
    t,
  );
});

test('fuzz: connect-udp :path', (t) => {
  fuzz(
    {
      name: 'connect-udp-path',
      corpus: TARGETS.map(([host, port]) => Buffer.from(connectUdpPath(host, port), 'latin1')),
      dictionary: TOKENS,
      maxLength: 4096,
      run: (input) => assertTarget(parseConnectUdpPath(text(input))),
      isParserError: () => false,
    },
    t,
  );
});
