// `kubetun connect`: which manager the flags and the environment name, and the kubeconfig checks made before
// any daemon starts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { describeManager, managerTarget } from '../../src/cli/connect-commands.js';
import { SessionStatusSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://198.18.0.1:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: shop}
- name: two
  context: {cluster: c, user: u}
current-context: one
`;

const base = { managerNamespace: 'kubetun', managerTimeout: '30', alsoProxy: [], neverProxy: [], allowConflictingSubnets: [] };

function tempKubeconfig(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-connect-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(file, KUBECONFIG);
  return file;
}

const direct = { kubeconfig: '', context: '', managerNamespace: '', managerWaitSeconds: 0, managerCaFile: '', managerTokenFile: '' };

test('--manager-url wins; $KUBETUN_MANAGER_URL is used when no kubeconfig flag is given; loopback h2c needs no kubeconfig', () => {
  const env = { HOME: '/nonexistent', KUBETUN_MANAGER_URL: 'http://127.0.0.1:30081' };
  assert.deepEqual(managerTarget({ ...base, managerUrl: 'http://[::1]:8081' }, new Set(), env), { ...direct, managerUrl: 'http://[::1]:8081' });
  assert.equal(managerTarget(base, new Set(), env).managerUrl, 'http://127.0.0.1:30081');
});

test('--manager-url over the network must be https, authenticated by the kubeconfig user or --manager-token-file', (t) => {
  const file = tempKubeconfig(t);
  const token = join(file, '..', 'token');
  writeFileSync(token, 'a-shared-token-0123456789\n');
  for (const url of ['http://198.18.0.1:30081', 'http://localhost:8081', 'ftp://x']) {
    assert.throws(() => managerTarget({ ...base, managerUrl: url, managerTokenFile: token }, new Set(), {}), /must be https:\/\/|is not an https:\/\/ URL/, url);
  }
  const url = 'https://198.18.0.1:30443';
  assert.deepEqual(managerTarget({ ...base, managerUrl: url, kubeconfig: relative(process.cwd(), file), context: 'two', managerCa: relative(process.cwd(), token) }, new Set(), {}), {
    ...direct,
    managerUrl: url,
    kubeconfig: file,
    context: 'two',
    managerCaFile: token,
  });
  assert.deepEqual(managerTarget({ ...base, managerUrl: url, managerTokenFile: token }, new Set(), { HOME: '/nonexistent' }), { ...direct, managerUrl: url, managerTokenFile: token });
  assert.throws(() => managerTarget({ ...base, managerUrl: url }, new Set(), { HOME: '/nonexistent' }), /no kubeconfig.*\(its user authenticates you to the traffic manager; or pass --manager-token-file\)/);
  assert.throws(() => managerTarget({ ...base, managerUrl: url, managerCa: '/nonexistent/ca.pem' }, new Set(), { KUBECONFIG: file }), /--manager-ca \/nonexistent\/ca\.pem: no such file/);
  assert.throws(() => managerTarget({ ...base, managerTokenFile: token }, new Set(), { KUBECONFIG: file }), /give --manager-url too/);
  assert.throws(() => managerTarget({ ...base, managerUrl: url, managerTokenFile: token, context: 'one' }, new Set(), { KUBECONFIG: file }), /cannot be combined with --kubeconfig or --context/);
});

test('kubeconfig flags win over $KUBETUN_MANAGER_URL; paths are made absolute for the daemon', (t) => {
  const file = tempKubeconfig(t);
  const env = { HOME: '/nonexistent', KUBETUN_MANAGER_URL: 'http://198.18.0.2:30081' };
  const target = managerTarget({ ...base, kubeconfig: relative(process.cwd(), file), context: 'two' }, new Set(), env);
  assert.deepEqual(target, { managerUrl: '', kubeconfig: file, context: 'two', managerNamespace: 'kubetun', managerWaitSeconds: 30, managerCaFile: '', managerTokenFile: '' });
  const fromEnv = managerTarget({ ...base, managerNamespace: 'tm' }, new Set(['managerNamespace']), { HOME: '/nonexistent', KUBECONFIG: relative(process.cwd(), file) });
  assert.deepEqual(fromEnv, { managerUrl: '', kubeconfig: file, context: '', managerNamespace: 'tm', managerWaitSeconds: 30, managerCaFile: '', managerTokenFile: '' });
});

test('--manager-url with --manager-namespace or --manager-timeout is refused', () => {
  assert.throws(() => managerTarget({ ...base, managerUrl: 'https://x:1' }, new Set(['managerNamespace']), {}), /cannot be combined with --manager-namespace or --manager-timeout/);
  assert.throws(() => managerTarget({ ...base, managerUrl: 'https://x:1' }, new Set(['managerTimeout']), {}), /cannot be combined/);
});

test('--manager-timeout takes whole seconds up to 600; anything else is refused naming the value', (t) => {
  const file = tempKubeconfig(t);
  assert.equal(managerTarget({ ...base, kubeconfig: file, managerTimeout: '0' }, new Set(['managerTimeout']), {}).managerWaitSeconds, 0);
  assert.equal(managerTarget({ ...base, kubeconfig: file, managerTimeout: '600' }, new Set(['managerTimeout']), {}).managerWaitSeconds, 600);
  for (const bad of ['-1', '1.5', '10s', '', '601']) {
    assert.throws(() => managerTarget({ ...base, kubeconfig: file, managerTimeout: bad }, new Set(['managerTimeout']), {}), new RegExp(`--manager-timeout takes whole seconds from 0 to 600, not "${bad}"`));
  }
});

test('no kubeconfig, a missing file, an unknown context: clear errors that also mention --manager-url', (t) => {
  assert.throws(() => managerTarget(base, new Set(), { HOME: '/nonexistent' }), /^Error: no kubeconfig: set KUBECONFIG or pass --kubeconfig .* \(or pass --manager-url/);
  assert.throws(() => managerTarget({ ...base, kubeconfig: '/nonexistent/config' }, new Set(), {}), /the kubeconfig file \/nonexistent\/config \(from --kubeconfig\) does not exist/);
  const file = tempKubeconfig(t);
  assert.throws(() => managerTarget({ ...base, kubeconfig: file, context: 'three' }, new Set(), {}), /context "three" is not in .*; its contexts are one, two/);
});

test('status shows the manager pod and context when reached through a port-forward', () => {
  const viaKube = create(SessionStatusSchema, { managerNamespace: 'kubetun', managerPod: 'traffic-manager-abc', context: 'one' });
  assert.equal(describeManager(viaKube), 'pod kubetun/traffic-manager-abc via port-forward (context one)');
  assert.equal(describeManager(create(SessionStatusSchema, { managerUrl: 'http://x:1' })), 'http://x:1');
});
