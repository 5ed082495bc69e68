import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseUpstream, upstreamFromResolvConf } from '../../../src/sandbox/cluster-dns/options.js';

test('upstream addresses: IP, IP:PORT, IPv6, [IPv6]:PORT; anything else is refused with the form to use', () => {
  assert.deepEqual(parseUpstream('198.18.0.1'), { address: '198.18.0.1', port: 53 });
  assert.deepEqual(parseUpstream('198.18.0.1:5353'), { address: '198.18.0.1', port: 5353 });
  assert.deepEqual(parseUpstream('2001:2::1'), { address: '2001:2::1', port: 53 });
  assert.deepEqual(parseUpstream('[2001:2::1]:5353'), { address: '2001:2::1', port: 5353 });
  for (const bad of ['dns.example', '198.18.0.1:0', '198.18.0.1:70000', '[2001:2::1]:x', '']) {
    assert.throws(() => parseUpstream(bad), /is not an upstream resolver: use IP or IP:PORT/, bad);
  }
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
      assert.deepEqual(parseUpstream(`${ip}:${port}`), { address: ip, port });
    }),
  );
});

test("the upstream defaults to resolv.conf's first nameserver; none is an error saying what to pass", () => {
  assert.deepEqual(upstreamFromResolvConf('search x\nnameserver 198.18.0.1\nnameserver 198.18.0.2\n'), { address: '198.18.0.1', port: 53 });
  assert.deepEqual(upstreamFromResolvConf('nameserver fe80::1%eth0\n'), { address: 'fe80::1', port: 53 });
  assert.throws(() => upstreamFromResolvConf('search x\n', '/etc/resolv.conf'), /\/etc\/resolv\.conf names no nameserver: pass --upstream IP\[:PORT\]/);
});
