// End to end on a real control plane (the binaries of scripts/build-kubernetes.sh), in a namespace of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestApiInNetns, type ApiCredentials, type ApiResponse } from '../../src/sandbox/control-plane/api-request.js';
import { ControlPlaneError } from '../../src/sandbox/control-plane/control-plane-errors.js';
import { readControlPlane, startControlPlane, stopControlPlane, type ControlPlane } from '../../src/sandbox/control-plane/control-plane.js';
import { isAlive } from '../../src/sandbox/processes.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';
import { TestNetns } from '../helpers/netns.js';

const ADDRESS = '198.18.0.1';
const START_TIMEOUT_MS = 120_000;


const message = (response: ApiResponse | undefined): string => (JSON.parse(response?.body ?? '{}') as { message?: string }).message ?? '';

test('a real control plane: RBAC with certificates, namespaces, and the service range in the invalid-ClusterIP answer', { timeout: 240_000 }, async (t) => {
  const reason = controlPlaneSkipReason();
  if (reason !== null) {
    t.skip(reason);
    return;
  }
  const ns = await TestNetns.create('cp');
  const stateDir = mkdtempSync(join(tmpdir(), 'kt-cp-state-'));
  let plane: ControlPlane | null = null;
  try {
    // A non-loopback address, as the sandbox's node namespace will have (on lo: no dummy driver here).
    const added = await ns.exec('ip', ['addr', 'add', `${ADDRESS}/32`, 'dev', 'lo']);
    assert.equal(added.code, 0, added.stderr);

    plane = await startControlPlane({ netns: ns.name, address: ADDRESS, stateDir, readyTimeoutMs: START_TIMEOUT_MS });
    assert.equal(plane.server, `https://${ADDRESS}:6443`);
    assert.deepEqual(plane.processes.map((p) => p.id), ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
    assert.ok(plane.processes.every(isAlive));
    assert.deepEqual(readControlPlane(stateDir)?.processes, plane.processes);
    assert.match(readFileSync(plane.kubeconfig, 'utf8'), /server: https:\/\/198\.18\.0\.1:6443/);
    await assert.rejects(
      startControlPlane({ netns: ns.name, address: ADDRESS, stateDir }),
      (e: unknown) => e instanceof ControlPlaneError && e.code === 'ALREADY_RUNNING',
    );

    const [version, created, invalid, valid] = await requestApiInNetns(ns.name, {
      credentials: plane.admin,
      timeoutMs: 20_000,
      requests: [
        { method: 'GET', path: '/version' },
        { method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } } },
        {
          method: 'POST',
          path: '/api/v1/namespaces/shop/services',
          body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'probe' }, spec: { clusterIP: '1.1.1.1', ports: [{ port: 443 }] } },
        },
        { method: 'POST', path: '/api/v1/namespaces/shop/services', body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'orders' }, spec: { ports: [{ port: 80 }] } } },
      ],
    });
    assert.equal((JSON.parse(version!.body) as { gitVersion: string }).gitVersion, 'v1.20.2');
    assert.equal(created?.status, 201, created?.body);
    assert.equal(invalid?.status, 422, invalid?.body);
    assert.match(message(invalid), /The range of valid IPs is 10\.96\.0\.0\/16/);
    assert.equal(valid?.status, 201, valid?.body);
    const clusterIp = (JSON.parse(valid!.body) as { spec: { clusterIP: string } }).spec.clusterIP;
    assert.match(clusterIp, /^10\.96\.\d+\.\d+$/);

    // RBAC is on: the scheduler's certificate is a known user, but not one that may create namespaces.
    const scheduler: ApiCredentials = { ...plane.admin, certFile: join(stateDir, 'pki', 'scheduler.crt'), keyFile: join(stateDir, 'pki', 'scheduler.key') };
    const [forbidden] = await requestApiInNetns(ns.name, {
      credentials: scheduler,
      timeoutMs: 10_000,
      requests: [{ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'not-allowed' } } }],
    });
    assert.equal(forbidden?.status, 403, forbidden?.body);
    assert.match(message(forbidden), /system:kube-scheduler/);

    // The controller-manager works: the new namespace gets its default ServiceAccount.
    const [account] = await requestApiInNetns(ns.name, {
      credentials: plane.admin,
      timeoutMs: 30_000,
      untilStatus: 200,
      requests: [{ method: 'GET', path: '/api/v1/namespaces/shop/serviceaccounts/default' }],
    });
    assert.equal(account?.status, 200, account?.body);

    const stopped = plane;
    plane = null;
    await stopControlPlane(stopped);
    assert.ok(stopped.processes.every((p) => !isAlive(p)));
    assert.equal(readControlPlane(stateDir), null);
    assert.ok(existsSync(join(stateDir, 'etcd')), 'the data stays for the next start');
  } finally {
    if (plane !== null) await stopControlPlane(plane);
    await ns.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
