// Loading kubeconfigs (from files made here) and describing API failures (errors constructed here with
// client-node's own classes; the same failures from a real API server are in install.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, ApiException, FetchError, KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError, describeApiError, loadKubeConfig } from '../../src/k8s/kube-client.js';

function kubeconfigText(contexts: string[], current: string | null, server = 'https://198.18.0.1:6443'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    ...contexts.flatMap((name) => [`- name: ${name}`, '  cluster:', `    server: ${server}`]),
    'users:',
    ...contexts.flatMap((name) => [`- name: ${name}-user`, '  user:', `    token: token-of-${name}`]),
    'contexts:',
    ...contexts.flatMap((name) => [`- name: ${name}`, '  context:', `    cluster: ${name}`, `    user: ${name}-user`]),
    ...(current === null ? [] : [`current-context: ${current}`]),
    '',
  ].join('\n');
}

function withDir(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kt-kubeconfig-'));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rejects = (run: () => unknown, message: RegExp): void => assert.throws(run, (e: unknown) => e instanceof KubeConfigError && message.test(e.message));

test('--kubeconfig wins over KUBECONFIG, and --context picks a context', () => {
  withDir((dir) => {
    const flag = join(dir, 'flag.yaml');
    const env = join(dir, 'env.yaml');
    writeFileSync(flag, kubeconfigText(['dev', 'prod'], 'dev'));
    writeFileSync(env, kubeconfigText(['other'], 'other'));
    const config = loadKubeConfig({ kubeconfig: flag, env: { KUBECONFIG: env } });
    assert.equal(config.getCurrentContext(), 'dev');
    assert.equal(loadKubeConfig({ kubeconfig: flag, context: 'prod' }).getCurrentUser()?.name, 'prod-user');
    assert.equal(loadKubeConfig({ env: { KUBECONFIG: env } }).getCurrentContext(), 'other');
  });
});

test('KUBECONFIG lists merge like kubectl: the first file wins, missing files are skipped', () => {
  withDir((dir) => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, kubeconfigText(['dev'], null));
    writeFileSync(b, kubeconfigText(['dev', 'prod'], 'prod', 'https://198.18.0.2:6443'));
    const config = loadKubeConfig({ env: { KUBECONFIG: [join(dir, 'missing.yaml'), a, b].join(':') } });
    assert.equal(config.getCurrentContext(), 'prod');
    assert.deepEqual(config.getContexts().map((c) => c.name), ['dev', 'prod']);
    assert.equal(config.getCluster('dev')?.server, 'https://198.18.0.1:6443');
  });
});

test('~/.kube/config is the fallback; with none of the three the error says what to set', () => {
  withDir((dir) => {
    rejects(() => loadKubeConfig({ env: { HOME: dir } }), /^no kubeconfig: set KUBECONFIG or pass --kubeconfig/);
    rejects(() => loadKubeConfig({ env: { HOME: dir, KUBECONFIG: join(dir, 'nope') } }), /no file of KUBECONFIG .* exists: fix KUBECONFIG or pass --kubeconfig/);
    rejects(() => loadKubeConfig({ kubeconfig: join(dir, 'nope') }), /the kubeconfig file .*nope \(from --kubeconfig\) does not exist/);
    mkdirSync(join(dir, '.kube'));
    writeFileSync(join(dir, '.kube', 'config'), kubeconfigText(['home'], 'home'));
    assert.equal(loadKubeConfig({ env: { HOME: dir } }).getCurrentContext(), 'home');
  });
});

test('a wrong --context names the file and its contexts; a file without a usable context says so', () => {
  withDir((dir) => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, kubeconfigText(['dev', 'prod'], 'dev'));
    rejects(() => loadKubeConfig({ kubeconfig: file, context: 'staging' }), new RegExp(`^context "staging" is not in ${file}; its contexts are dev, prod$`));
    writeFileSync(file, kubeconfigText(['dev'], null));
    rejects(() => loadKubeConfig({ kubeconfig: file }), /it has no current-context; pass --context \(its contexts are dev\)/);
    writeFileSync(file, kubeconfigText(['dev'], 'gone'));
    rejects(() => loadKubeConfig({ kubeconfig: file }), /its current-context "gone" is not one of its contexts/);
    writeFileSync(file, 'clusters: [');
    rejects(() => loadKubeConfig({ kubeconfig: file }), new RegExp(`^cannot read the kubeconfig ${file}: `));
  });
});

function config(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigText(['dev'], 'dev'));
  return kc;
}

const status = (code: number, reason: string, message: string): string => JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });

test('describeApiError (constructed ApiExceptions): 401 says to log in again, 403 names user, verb, resource and scope', () => {
  assert.equal(
    describeApiError(new ApiException(401, 'Unauthorized', undefined, {}), 'read Namespace kubetun', config()),
    'cannot read Namespace kubetun: https://198.18.0.1:6443 rejected the credentials of kubeconfig user "dev-user" (401 Unauthorized): ' +
      'they are expired or invalid; log in again / refresh the token, then retry',
  );
  const namespaced = status(403, 'Forbidden', 'services is forbidden: User "system:serviceaccount:default:nobody" cannot create resource "services" in API group "" in the namespace "kubetun"');
  assert.equal(
    describeApiError(new ApiException(403, 'Unsuccessful HTTP Request', namespaced, {}), 'create Service kubetun/traffic-manager', config()),
    'cannot create Service kubetun/traffic-manager: user "system:serviceaccount:default:nobody" lacks the permission to create services in namespace "kubetun" (403 Forbidden); ' +
      'ask a cluster admin to grant it (RBAC), or use a --context whose user has it',
  );
  const clusterWide = status(403, 'Forbidden', 'clusterroles.rbac.authorization.k8s.io "x" is forbidden: User "jane" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope');
  assert.match(describeApiError(new ApiException(403, '', clusterWide, {}), 'read ClusterRole x'), /user "jane" lacks the permission to get clusterroles\.rbac\.authorization\.k8s\.io cluster-wide/);
  // A 403 that is not RBAC's (e.g. a terminating namespace) keeps the server's words.
  assert.match(describeApiError(new ApiException(403, '', status(403, 'Forbidden', 'unable to create new content in namespace x because it is being terminated'), {}), 'create Pod'), /forbidden \(403\): unable to create new content/);
});

test('describeApiError (constructed ApiExceptions): 404, 409 and other statuses carry the server message', () => {
  assert.equal(describeApiError(new ApiException(404, '', status(404, 'NotFound', 'the server could not find the requested resource'), {}), 'list ServiceCIDRs'), 'cannot list ServiceCIDRs: not found (404): the server could not find the requested resource');
  assert.match(describeApiError(new ApiException(409, '', status(409, 'Conflict', 'the object has been modified'), {}), 'update Deployment a/b'), /conflict \(409\): the object has been modified; retry/);
  assert.equal(
    describeApiError(new ApiException(500, '', status(500, 'InternalError', 'etcdserver: request timed out'), {}), 'create Namespace kubetun', config()),
    'cannot create Namespace kubetun: https://198.18.0.1:6443 answered 500 InternalError: etcdserver: request timed out',
  );
  assert.match(describeApiError(new ApiException(502, '', 'Bad Gateway', {}), 'x'), /answered 502: Bad Gateway/);
});

test('describeApiError (constructed FetchErrors): refused, unreachable, unknown host, untrusted certificates and timeouts name the server', () => {
  const fetchError = (code: string): FetchError =>
    new FetchError(`request to https://203.0.113.9:6443/api/v1/namespaces/kubetun failed, reason: connect ${code}`, 'system', Object.assign(new Error(code), { code }));
  assert.equal(
    describeApiError(fetchError('ECONNREFUSED'), 'read Namespace kubetun'),
    'cannot read Namespace kubetun: https://203.0.113.9:6443 refused the connection: is the cluster running, and is this the right --context?',
  );
  assert.match(describeApiError(fetchError('ETIMEDOUT'), 'x', config()), /no answer from https:\/\/198\.18\.0\.1:6443 \(ETIMEDOUT\): check the network/);
  assert.match(describeApiError(fetchError('EHOSTUNREACH'), 'x'), /no answer from https:\/\/203\.0\.113\.9:6443 \(EHOSTUNREACH\)/);
  assert.match(describeApiError(fetchError('ENOTFOUND'), 'x'), /cannot resolve the host of https:\/\/203\.0\.113\.9:6443/);
  assert.match(describeApiError(fetchError('DEPTH_ZERO_SELF_SIGNED_CERT'), 'x'), /certificate of https:\/\/203\.0\.113\.9:6443 is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  assert.equal(
    describeApiError(new AbortError('The user aborted a request.'), 'read Namespace kubetun', config()),
    'cannot read Namespace kubetun: https://198.18.0.1:6443 did not answer in time: check the network (VPN, firewall) and that this is the right --context',
  );
  assert.equal(describeApiError(new Error('exec plugin failed'), 'read Namespace kubetun'), 'cannot read Namespace kubetun: exec plugin failed');
});
