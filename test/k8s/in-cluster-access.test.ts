import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterAccess } from '../../src/k8s/in-cluster-access.js';
import { KubeConfigError } from '../../src/k8s/kube-config-error.js';

test('in a pod: the service host and port make the server; the CA and a fresh read of the token go with each request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-sa-'));
  try {
    writeFileSync(join(dir, 'token'), 'first\n');
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    const access = inClusterAccess({ KUBERNETES_SERVICE_HOST: 'fd10:96::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    assert.equal(access.getCurrentCluster()?.server, 'https://[fd10:96::1]:443');
    const opts: RequestOptions = { headers: { Accept: 'application/json' } };
    await access.applyToHTTPSOptions(opts);
    assert.deepEqual(opts.headers, { Accept: 'application/json', Authorization: 'Bearer first' });
    assert.equal(String(opts.ca), 'CA');
    writeFileSync(join(dir, 'token'), 'rotated');
    await access.applyToHTTPSOptions(opts);
    assert.equal((opts.headers as Record<string, string>).Authorization, 'Bearer rotated', 'a rotated token is used at once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('outside a pod, or without a mounted token: a KubeConfigError saying what is missing and what to do', () => {
  const missing = (fn: () => unknown, message: RegExp): void => assert.throws(fn, (e: unknown) => e instanceof KubeConfigError && message.test(e.message));
  missing(() => inClusterAccess({}, '/nonexistent'), /not in a pod \(KUBERNETES_SERVICE_HOST\/PORT are not set\): pass --kubeconfig/);
  missing(
    () => inClusterAccess({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, '/nonexistent'),
    /cannot read the service account's \/nonexistent\/token .*automountServiceAccountToken/,
  );
});
