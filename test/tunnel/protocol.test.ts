import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  connectUdpPath,
  errorCodeFor,
  formatAuthority,
  parseAuthority,
  parseConnectUdpPath,
} from '../../src/tunnel/protocol.js';

const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
const port = fc.integer({ min: 1, max: 65535 });

test('CONNECT authorities and connect-udp paths round-trip for IPv4, IPv6 and names', () => {
  fc.assert(
    fc.property(host, port, (h, p) => {
      assert.deepEqual(parseAuthority(formatAuthority(h, p)), { host: h, port: p });
      assert.deepEqual(parseConnectUdpPath(connectUdpPath(h, p)), { host: h, port: p });
    }),
  );
  assert.equal(connectUdpPath('2001:db8::1', 53), '/.well-known/masque/udp/2001%3Adb8%3A%3A1/53/');
});

test('malformed authorities and paths are refused', () => {
  for (const bad of ['', '10.0.0.1', '10.0.0.1:0', '10.0.0.1:65536', '::1:80', '[::1]80', ':80', '10.0.0.1:8x']) {
    assert.equal(parseAuthority(bad), undefined, bad);
  }
  const masque = '/.well-known/masque/udp';
  for (const bad of ['/', `${masque}/10.0.0.1/53`, `${masque}/10.0.0.1/0/`, `${masque}//53/`, `${masque}/%E0%A4%A/53/`]) {
    assert.equal(parseConnectUdpPath(bad), undefined, bad);
  }
});

test('failure statuses map to the client error codes', () => {
  assert.equal(errorCodeFor(502, 'refused'), 'REFUSED');
  assert.equal(errorCodeFor(502, 'unreachable'), 'UNREACHABLE');
  assert.equal(errorCodeFor(504, 'timeout'), 'TIMEOUT');
  assert.equal(errorCodeFor(403, 'forbidden'), 'FORBIDDEN');
  assert.equal(errorCodeFor(403, 'session'), 'SESSION');
  assert.equal(errorCodeFor(429, 'limit'), 'LIMIT');
  assert.equal(errorCodeFor(429, undefined), 'LIMIT');
  assert.equal(errorCodeFor(504, undefined), 'TIMEOUT');
  assert.equal(errorCodeFor(502, 'something-new'), 'UNREACHABLE');
  assert.equal(errorCodeFor(500, undefined), 'CONNECTION');
});
