import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DnsExchangeError, exchangeOverUdp } from '../../src/dns/dns-exchange.js';

test('a UDP exchange whose connect fails (the broadcast address: EACCES) rejects with DnsExchangeError, not a thrown send', async () => {
  const query = Buffer.alloc(12);
  query.writeUInt16BE(0x1234, 0);
  await assert.rejects(exchangeOverUdp({ ip: '255.255.255.255', port: 53 }, query, 1000), (error: Error) => {
    assert.ok(error instanceof DnsExchangeError, String(error));
    assert.match(error.message, /255\.255\.255\.255.*EACCES/);
    return true;
  });
});
