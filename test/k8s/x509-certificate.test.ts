// The X.509 builder checked by three independent readers: node's X509Certificate, openssl (verify and -text),
// and a real TLS handshake with a client that trusts only the CA.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { objectIdentifier, time, unsignedInteger } from '../../src/k8s/der.js';
import { createCertificateAuthority, issueServerCertificate } from '../../src/k8s/x509-certificate.js';
import { createWebhookTls, webhookDnsNames, webhookTlsProblem } from '../../src/k8s/webhook-tls.js';

const NAMES = webhookDnsNames('traffic-manager', 'kubetun');
const openssl = spawnSync('openssl', ['version']).status === 0;

test('DER: integers stay positive and minimal, OIDs use base-128 arcs, times switch to GeneralizedTime in 2050', () => {
  assert.equal(unsignedInteger(Buffer.from([0x00, 0x00, 0x7f])).toString('hex'), '02017f');
  assert.equal(unsignedInteger(Buffer.from([0x80])).toString('hex'), '02020080');
  assert.equal(objectIdentifier('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
  assert.equal(time(new Date('2036-01-02T03:04:05Z')).toString('latin1'), '\x17\x0d360102030405Z');
  assert.equal(time(new Date('2050-01-02T03:04:05Z')).toString('latin1'), '\x18\x0f20500102030405Z');
});

test('node reads the CA and the server certificate: CA flag, names, EKU, signature, key pair, ten years', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const ca = createCertificateAuthority('kubetun test CA', now);
  const server = issueServerCertificate(ca, NAMES, now);
  const caCert = new X509Certificate(ca.certPem);
  const cert = new X509Certificate(server.certPem);
  assert.equal(caCert.ca, true);
  assert.equal(cert.ca, false);
  assert.ok(caCert.verify(caCert.publicKey), 'the CA is self-signed');
  assert.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey), 'the CA signed the server certificate');
  assert.ok(!cert.verify(new X509Certificate(createCertificateAuthority('other', now).certPem).publicKey), 'another CA did not');
  assert.ok(cert.checkPrivateKey(createPrivateKey(server.keyPem)));
  assert.equal(cert.subjectAltName, `DNS:${NAMES[0]}, DNS:${NAMES[1]}`);
  for (const name of NAMES) assert.equal(cert.checkHost(name), name);
  assert.equal(cert.checkHost('traffic-manager.other.svc'), undefined);
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.equal(cert.issuer, 'CN=kubetun test CA');
  assert.equal(cert.subject, `CN=${NAMES[0]}`);
  const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 86_400_000);
  assert.ok(years > 9.9 && years < 10.1, `${years} years`);
  assert.ok(Date.parse(cert.validFrom) < now.getTime());
  assert.throws(() => issueServerCertificate(ca, ['Not A Name']), /"Not A Name" is not a DNS name/);
});

test('openssl verifies the chain for the server purpose and shows the extensions', { skip: openssl ? false : 'needs openssl' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-x509-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = createWebhookTls(NAMES);
  writeFileSync(join(dir, 'ca.crt'), tls.caPem);
  writeFileSync(join(dir, 'tls.crt'), tls.certPem);
  const verify = spawnSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /tls\.crt: OK/);
  const text = spawnSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'tls.crt')], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  for (const shown of [/Version: 3 \(0x2\)/, /Signature Algorithm: ecdsa-with-SHA256/, /NIST CURVE: P-256/, /TLS Web Server Authentication/, /CA:FALSE/, /Digital Signature/, new RegExp(`DNS:${NAMES[0]}, DNS:${NAMES[1]}`), /X509v3 Authority Key Identifier/]) {
    assert.match(text.stdout, shown);
  }
  const caText = spawnSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'ca.crt')], { encoding: 'utf8' });
  assert.match(caText.stdout, /CA:TRUE, pathlen:0/);
  assert.match(caText.stdout, /Certificate Sign, CRL Sign/);
  // A server certificate used as a CA is refused: the chain check can fail.
  writeFileSync(join(dir, 'other.crt'), createWebhookTls(NAMES).certPem);
  const wrong = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'other.crt')], { encoding: 'utf8' });
  assert.notEqual(wrong.status, 0);
});

test('a TLS handshake: a client trusting only the CA connects as traffic-manager.kubetun.svc, and not under another name', async (t) => {
  const tls = createWebhookTls(NAMES);
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => res.end('hello'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = (servername: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, servername, ca: tls.caPem, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  assert.equal(await get('traffic-manager.kubetun.svc'), 'hello');
  await assert.rejects(get('traffic-manager.other.svc'), /ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
});

test('stored TLS is reused only when whole, matching, for the names and far from expiry', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const tls = createWebhookTls(NAMES, now);
  assert.equal(webhookTlsProblem(tls, NAMES, now), null);
  assert.match(webhookTlsProblem({ ...tls, keyPem: undefined }, NAMES, now) ?? '', /lacks a part/);
  assert.match(webhookTlsProblem({ ...tls, caPem: createWebhookTls(NAMES, now).caPem }, NAMES, now) ?? '', /not signed by its CA/);
  assert.match(webhookTlsProblem({ ...tls, keyPem: createWebhookTls(NAMES, now).keyPem }, NAMES, now) ?? '', /key does not belong/);
  assert.match(webhookTlsProblem(tls, webhookDnsNames('traffic-manager', 'other'), now) ?? '', /not for traffic-manager\.other\.svc/);
  assert.match(webhookTlsProblem(tls, NAMES, new Date('2036-05-15T00:00:00Z')) ?? '', /expires within 30 days/);
  assert.match(webhookTlsProblem({ ...tls, certPem: 'garbage' }, NAMES, now) ?? '', /does not parse/);
});
