// Choosing the traffic manager pod and its port from Service and Pod objects (as the API returns them).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import { ManagerLocatorError, notReadyReason, pickManagerPod, targetPortOf } from '../../src/k8s/manager-locator.js';
import { portForwardUrl } from '../../src/k8s/port-forward.js';
import { KubeConfig } from '@kubernetes/client-node';

function pod(name: string, created: number, status: V1Pod['status'], extra: Partial<V1Pod['metadata']> = {}): V1Pod {
  return {
    metadata: { name, creationTimestamp: new Date(created), ...extra },
    spec: { containers: [{ name: 'manager', ports: [{ name: 'api', containerPort: 8081 }] }] },
    status,
  };
}

const ready = (name: string, created: number): V1Pod =>
  pod(name, created, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });

test('a Ready pod is picked, the newest first; terminating pods are skipped', () => {
  const old = ready('tm-old', 1_000);
  const fresh = ready('tm-new', 2_000);
  const terminating = { ...ready('tm-dying', 3_000), metadata: { name: 'tm-dying', deletionTimestamp: new Date(4_000) } };
  const pending = pod('tm-pending', 5_000, { phase: 'Pending' });
  assert.equal(pickManagerPod([old, terminating, fresh, pending], 'kubetun', 'app=tm').metadata?.name, 'tm-new');
});

test('no ready pod: the error names the pod and its reason', () => {
  const waiting = pod('tm-1', 1_000, {
    phase: 'Pending',
    containerStatuses: [
      { name: 'manager', ready: false, restartCount: 0, image: 'x', imageID: '', state: { waiting: { reason: 'ErrImagePull', message: 'image x not found' } } },
    ],
  });
  assert.throws(
    () => pickManagerPod([waiting], 'kubetun', 'app=tm'),
    (error: unknown) =>
      error instanceof ManagerLocatorError &&
      error.message === 'the traffic manager pod tm-1 is not ready: container manager is waiting: ErrImagePull (image x not found)',
  );
});

test('no pod at all: the error names the selector and what to check', () => {
  assert.throws(() => pickManagerPod([], 'kubetun', 'app=tm'), /no traffic manager pod in namespace kubetun matches the selector app=tm/);
});

test('notReadyReason: unscheduled, running but unready, terminated, deleted', () => {
  const unscheduled = pod('a', 0, {
    phase: 'Pending',
    conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available' }],
  });
  assert.equal(notReadyReason(unscheduled), 'it is not scheduled: 0/1 nodes are available');
  const unready = pod('b', 0, {
    phase: 'Running',
    containerStatuses: [{ name: 'manager', ready: false, restartCount: 0, image: 'x', imageID: '', state: { running: {} } }],
  });
  assert.match(notReadyReason(unready), /container manager is running but not ready/);
  const crashed = pod('c', 0, {
    phase: 'Running',
    containerStatuses: [{ name: 'manager', ready: false, restartCount: 3, image: 'x', imageID: '', state: { terminated: { exitCode: 2 } } }],
  });
  assert.equal(notReadyReason(crashed), 'container manager terminated: exit code 2');
  assert.equal(notReadyReason(pod('d', 0, {}, { deletionTimestamp: new Date() })), 'it is being deleted');
  assert.equal(notReadyReason(pod('e', 0, { phase: 'Pending' })), 'it is Pending, not yet on a node');
});

test('targetPortOf: a number, a numeric string, a named port, none', () => {
  const service = (targetPort: number | string | undefined): V1Service => ({
    metadata: { name: 'traffic-manager', namespace: 'kubetun' },
    spec: { ports: [{ name: 'api', port: 80, targetPort: targetPort as never }] },
  });
  const p = ready('tm', 0);
  assert.equal(targetPortOf(service(9000), p), 9000);
  assert.equal(targetPortOf(service('9001'), p), 9001);
  assert.equal(targetPortOf(service('api'), p), 8081);
  assert.equal(targetPortOf(service(undefined), p), 80);
  assert.throws(() => targetPortOf(service('grpc'), p), /no container port named "grpc"/);
  assert.throws(() => targetPortOf({ metadata: { namespace: 'kubetun' }, spec: { ports: [] } }, p), /has no ports: run `kubetun install` again/);
});

test('portForwardUrl: wss from https, names escaped, trailing slash dropped', () => {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://198.18.0.1:6443/', skipTLSVerify: false }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  assert.equal(
    portForwardUrl(config, { namespace: 'kubetun', pod: 'traffic-manager-abc', port: 8081 }),
    'wss://198.18.0.1:6443/api/v1/namespaces/kubetun/pods/traffic-manager-abc/portforward?ports=8081',
  );
});
