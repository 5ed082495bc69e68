import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { locateBinaries } from '../../src/sandbox/control-plane/binaries.js';
import { apiserverCommand, controllerManagerCommand, etcdCommand, schedulerCommand, serverUrl, type ControlPlaneLayout } from '../../src/sandbox/control-plane/command-lines.js';
import { ControlPlaneError } from '../../src/sandbox/control-plane/control-plane-errors.js';
import { startControlPlane } from '../../src/sandbox/control-plane/control-plane.js';
import { renderKubeconfig } from '../../src/sandbox/control-plane/kubeconfig.js';
import { apiserverSubjectAltNames, ensurePki, firstServiceAddress, type ControlPlanePki } from '../../src/sandbox/control-plane/pki.js';

const run = promisify(execFile);
const binaries = { etcd: '/usr/bin/etcd', kubeApiserver: '/b/kube-apiserver', kubeControllerManager: '/b/kcm', kubeScheduler: '/b/ks' };
const layout: ControlPlaneLayout = {
  address: '198.18.0.1',
  securePort: 6443,
  serviceClusterIpRange: '10.96.0.0/16',
  etcdDataDir: '/s/etcd',
  etcdClientPort: 2379,
  etcdPeerPort: 2380,
  controllerManagerKubeconfig: '/s/cm.kubeconfig',
  schedulerKubeconfig: '/s/sched.kubeconfig',
  servingCertDir: '/s/serving',
};
const pair = (n: string): { certFile: string; keyFile: string } => ({ certFile: `/p/${n}.crt`, keyFile: `/p/${n}.key` });
const pki: ControlPlanePki = {
  dir: '/p',
  ca: pair('ca'),
  apiserver: pair('apiserver'),
  admin: pair('admin'),
  controllerManager: pair('cm'),
  scheduler: pair('sched'),
  apiserverKubeletClient: pair('kubelet-client'),
  serviceAccountPrivateKey: '/p/sa.key',
  serviceAccountPublicKey: '/p/sa.pub',
};

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const toInt = (o: readonly number[]): number => ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;

test("the kubernetes Service's address is the one after the range's base, wrapping at 255", () => {
  assert.equal(firstServiceAddress('10.96.0.0/16'), '10.96.0.1');
  assert.equal(firstServiceAddress('10.0.255.255/8'), '10.1.0.0');
  fc.assert(
    fc.property(ipv4, fc.integer({ min: 1, max: 32 }), (o, prefix) => {
      const next = firstServiceAddress(`${o.join('.')}/${prefix}`).split('.').map(Number);
      assert.equal(toInt(next), (toInt(o) + 1) % 2 ** 32);
    }),
  );
  assert.throws(() => firstServiceAddress('fd10:96::/112'), (e: unknown) => e instanceof ControlPlaneError && e.code === 'PKI_FAILED');
});

test("the API server's certificate names its address, the kubernetes Service's address and in-cluster names", () => {
  const sans = apiserverSubjectAltNames('198.18.0.1', '10.96.0.0/16');
  for (const san of ['IP:198.18.0.1', 'IP:10.96.0.1', 'IP:127.0.0.1', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local']) {
    assert.ok(sans.includes(san), san);
  }
  assert.equal(apiserverSubjectAltNames('127.0.0.1', '10.96.0.0/16').filter((s) => s === 'IP:127.0.0.1').length, 1);
});

test('the API server runs with RBAC, certificate auth, the service range and no insecure port', () => {
  const { args } = apiserverCommand(binaries, layout, pki);
  for (const flag of [
    '--service-cluster-ip-range=10.96.0.0/16',
    '--authorization-mode=Node,RBAC',
    '--client-ca-file=/p/ca.crt',
    '--tls-cert-file=/p/apiserver.crt',
    '--insecure-port=0',
    '--bind-address=198.18.0.1',
    '--advertise-address=198.18.0.1',
    '--etcd-servers=http://127.0.0.1:2379',
    '--service-account-signing-key-file=/p/sa.key',
    '--service-account-key-file=/p/sa.pub',
  ]) {
    assert.ok(args.includes(flag), flag);
  }
  assert.ok(!args.some((a) => a.startsWith('--feature-gates')), 'one service range: no dual-stack gate');
});

test("the API server keeps 1.20's default admission plugins, MutatingAdmissionWebhook among them (the agent's webhook needs it)", () => {
  const { args } = apiserverCommand(binaries, layout, pki);
  // --enable-admission-plugins adds to the defaults; only --disable-admission-plugins or --admission-control could remove one.
  assert.ok(!args.some((a) => a.startsWith('--disable-admission-plugins') || a.startsWith('--admission-control=')), args.join(' '));
});

test('two service ranges turn on 1.20\'s dual-stack feature in the API server and the controller-manager', () => {
  const dual = { ...layout, serviceClusterIpRange: '10.96.0.0/16,fd10:96::/112' };
  for (const { args } of [apiserverCommand(binaries, dual, pki), controllerManagerCommand(binaries, dual, pki)]) {
    assert.ok(args.includes('--service-cluster-ip-range=10.96.0.0/16,fd10:96::/112'));
    assert.ok(args.includes('--feature-gates=IPv6DualStack=true'));
  }
  assert.equal(firstServiceAddress(dual.serviceClusterIpRange), '10.96.0.1');
});

test('etcd and the other components listen on loopback only, without insecure ports', () => {
  assert.ok(etcdCommand(binaries, layout).args.every((a) => !a.includes('198.18.')));
  for (const c of [controllerManagerCommand(binaries, layout, pki), schedulerCommand(binaries, layout)]) {
    assert.ok(c.args.includes('--bind-address=127.0.0.1'), c.id);
    assert.ok(c.args.includes('--port=0'), c.id);
    assert.ok(c.args.includes('--leader-elect=false'), c.id);
  }
  const cm = controllerManagerCommand(binaries, layout, pki).args;
  assert.ok(cm.includes('--service-account-private-key-file=/p/sa.key'));
  assert.ok(cm.includes('--root-ca-file=/p/ca.crt'));
});

test('server URLs bracket IPv6 addresses', () => {
  assert.equal(serverUrl('198.18.0.1', 6443), 'https://198.18.0.1:6443');
  assert.equal(serverUrl('fd00::1', 6443), 'https://[fd00::1]:6443');
});

test('a kubeconfig embeds the CA and client certificate and selects its context', () => {
  const text = renderKubeconfig({ name: 'kt', server: 'https://198.18.0.1:6443', caPem: 'CA PEM', certPem: 'CERT PEM', keyPem: 'KEY PEM', namespace: 'shop' });
  const value = (key: string): string => {
    const line = text.split('\n').find((l) => l.trimStart().startsWith(`${key}: `));
    assert.ok(line !== undefined, key);
    return line.trimStart().slice(key.length + 2);
  };
  assert.equal(value('server'), 'https://198.18.0.1:6443');
  assert.equal(Buffer.from(value('certificate-authority-data'), 'base64').toString(), 'CA PEM');
  assert.equal(Buffer.from(value('client-certificate-data'), 'base64').toString(), 'CERT PEM');
  assert.equal(Buffer.from(value('client-key-data'), 'base64').toString(), 'KEY PEM');
  assert.equal(value('current-context'), 'kt');
  assert.equal(value('namespace'), 'shop');
});

test('missing binaries are named with how to get them, and starting without them fails before doing anything', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'kt-cp-bin-'));
  try {
    const missing = locateBinaries(empty, () => null);
    assert.ok(Array.isArray(missing));
    assert.equal(missing.length, 4);
    assert.ok(missing.some((m) => m.includes('kube-apiserver') && m.includes('scripts/build-kubernetes.sh')));
    assert.ok(missing.some((m) => m.includes('apt-get install etcd-server')));
    await assert.rejects(
      startControlPlane({ netns: 'kt-cp-none', address: '127.0.0.1', stateDir: join(empty, 'state'), binDir: empty }),
      (e: unknown) => e instanceof ControlPlaneError && e.code === 'MISSING_BINARY' && /kube-scheduler/.test(e.message),
    );
    if (process.getuid?.() === 0) {
      // Binaries present (faked), but the namespace is not there: said so, nothing started.
      const fakeBin = join(empty, 'bin');
      mkdirSync(fakeBin);
      for (const b of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) writeFileSync(join(fakeBin, b), '#!/bin/sh\n', { mode: 0o755 });
      if (!Array.isArray(locateBinaries(fakeBin))) {
        await assert.rejects(
          startControlPlane({ netns: `kt-cp-absent-${process.pid}`, address: '127.0.0.1', stateDir: join(empty, 'state'), binDir: fakeBin }),
          (e: unknown) => e instanceof ControlPlaneError && e.code === 'START_FAILED' && /create it first/.test(e.message),
        );
      }
    }
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('the PKI: certificates chain to the CA, name their users and groups, and the CA survives a remake', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-cp-pki-'));
  try {
    const first = await ensurePki(dir, '198.18.0.1', '10.96.0.0/16');
    const ca = readFileSync(first.ca.certFile, 'utf8');
    for (const pairFiles of [first.apiserver, first.admin, first.controllerManager, first.scheduler, first.apiserverKubeletClient]) {
      const { stdout } = await run('openssl', ['verify', '-CAfile', first.ca.certFile, pairFiles.certFile]);
      assert.match(stdout, /: OK/);
    }
    const subject = async (file: string): Promise<string> => (await run('openssl', ['x509', '-noout', '-subject', '-in', file])).stdout;
    assert.match(await subject(first.admin.certFile), /O = system:masters, CN = kubetun-admin/);
    assert.match(await subject(first.scheduler.certFile), /CN = system:kube-scheduler/);
    const sans = (await run('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', first.apiserver.certFile])).stdout;
    assert.match(sans, /IP Address:198\.18\.0\.1/);
    assert.match(sans, /IP Address:10\.96\.0\.1/);
    const second = await ensurePki(dir, '127.0.0.5', '10.96.0.0/16');
    assert.equal(readFileSync(second.ca.certFile, 'utf8'), ca);
    const sans2 = (await run('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', second.apiserver.certFile])).stdout;
    assert.match(sans2, /IP Address:127\.0\.0\.5/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
