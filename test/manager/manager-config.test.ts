import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPrefix } from '../../src/netstack/wire/ip-address.js';
import { ConfigError, managerSettings, parseHostPort } from '../../src/manager/manager-config.js';

test('defaults: [::]:8081, cluster.local, 60 s sessions, 5 s dial timeout', () => {
  const s = managerSettings({}, {});
  assert.equal(s.host, '::');
  assert.equal(s.port, 8081);
  assert.equal(s.cluster.clusterDomain, 'cluster.local');
  assert.equal(s.sessionTtlMs, 60_000);
  assert.equal(s.dialTimeoutMs, 5_000);
  assert.equal(s.cluster.dns, undefined);
  assert.equal(s.tls, undefined);
});

test('the environment fills what flags leave out, and flags win', () => {
  const env = {
    KUBETUN_POD_CIDRS: '10.244.0.0/16, fd10:244::/56',
    KUBETUN_SERVICE_CIDRS: '10.96.0.0/12',
    KUBETUN_DNS_SERVER: '10.96.0.10',
    KUBETUN_SESSION_TTL: '15',
  };
  const s = managerSettings({ serviceCidr: ['10.100.0.0/16'], dnsServer: '[::1]:5353' }, env);
  assert.deepEqual(s.cluster.podCidrs.map(formatPrefix), ['10.244.0.0/16', 'fd10:244::/56']);
  assert.deepEqual(s.cluster.serviceCidrs.map(formatPrefix), ['10.100.0.0/16']);
  assert.deepEqual(s.cluster.dns, { ip: '::1', port: 5353 });
  assert.equal(s.sessionTtlMs, 15_000);
  assert.deepEqual(managerSettings({}, env).cluster.dns, { ip: '10.96.0.10', port: 53 });
});

test('bad values are ConfigErrors naming the flag', () => {
  const cases: [Parameters<typeof managerSettings>[0], RegExp][] = [
    [{ podCidr: ['10.0.0.0/33'] }, /--pod-cidr/],
    [{ allow: ['nonsense'] }, /--allow/],
    [{ listen: '127.0.0.1' }, /--listen/],
    [{ listen: '127.0.0.1:99999' }, /--listen/],
    [{ dnsServer: 'dns.example:53' }, /--dns-server/],
    [{ sessionTtl: '-1' }, /--session-ttl/],
    [{ clusterDomain: 'bad domain' }, /--cluster-domain/],
    [{ tlsCert: 'cert.pem' }, /--tls-key/],
    [{ logLevel: 'loud' }, /--log-level/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => managerSettings(flags, {}), (e: unknown) => e instanceof ConfigError && message.test(e.message));
  }
});

test('host:port forms', () => {
  assert.deepEqual(parseHostPort('[::]:8081', 'listen'), { host: '::', port: 8081 });
  assert.deepEqual(parseHostPort('0.0.0.0:0', 'listen'), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseHostPort('fd00::53', 'dns-server', 53), { host: 'fd00::53', port: 53 });
  assert.deepEqual(parseHostPort('localhost:80', 'listen'), { host: 'localhost', port: 80 });
});
