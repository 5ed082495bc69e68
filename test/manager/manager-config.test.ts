import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPrefix } from '../../src/netstack/wire/ip-address.js';
import { ConfigError, managerSettings, parseHostPort } from '../../src/manager/manager-config.js';

test('defaults: 127.0.0.1:8081 (port-forwards only), cluster.local, 60 s sessions, 5 s dial timeout', () => {
  const s = managerSettings({}, {});
  assert.equal(s.host, '127.0.0.1');
  assert.equal(s.clientAuth, undefined);
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

test('a listener that is not loopback needs TLS and client authentication: a token file, or the Kubernetes API', () => {
  const refused = (flags: Parameters<typeof managerSettings>[0], env: Record<string, string>, message: RegExp): void => {
    assert.throws(() => managerSettings(flags, env), (e: unknown) => e instanceof ConfigError && message.test(e.message));
  };
  const tls = { tlsCert: 'cert.pem', tlsKey: 'key.pem' };
  const inPod = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  refused({ listen: '[::]:8081' }, {}, /--listen :::8081 is not a loopback address, and a listener others can reach must use TLS/);
  refused({ listen: '0.0.0.0:8081' }, inPod, /not a loopback address/);
  refused({ listen: '198.18.0.1:8081', ...tls }, {}, /without a Kubernetes API .* give --client-token-file/);
  refused({ listenTls: '[::]:8443' }, inPod, /--listen-tls serves TLS: give its certificate/);
  refused({ clientTokenFile: 'token' }, {}, /--client-token-file authenticates TLS clients: give --tls-cert and --tls-key too/);
  refused({ listen: '[::]:8081', listenTls: '[::]:8443', ...tls }, inPod, /--listen :::8081 is not a loopback address/);
  assert.deepEqual(managerSettings({ listen: '0.0.0.0:8443', ...tls, clientTokenFile: '/t' }, {}).clientAuth, { mode: 'token', tokenFile: '/t' });
  assert.deepEqual(managerSettings({ listen: '[::]:8443', ...tls }, inPod).clientAuth, { mode: 'kubernetes' });
  const both = managerSettings({ listen: '127.0.0.1:8081', listenTls: '[::]:8443', ...tls }, inPod);
  assert.deepEqual([both.host, both.tlsListen, both.clientAuth], ['127.0.0.1', { host: '::', port: 8443 }, { mode: 'kubernetes' }]);
  assert.deepEqual(managerSettings({}, { KUBETUN_LISTEN_TLS: '[::]:8443', KUBETUN_TLS_CERT: 'c', KUBETUN_TLS_KEY: 'k', KUBETUN_CLIENT_TOKEN_FILE: '/t' }).clientAuth, { mode: 'token', tokenFile: '/t' });
});
