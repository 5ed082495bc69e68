// The kubelet's pod events (a test double for the API server records the requests; the real one gets them in
// the sandbox e2e test): the event's shape, a repeat counted on the same event, long messages cut, failures
// never thrown.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../src/log/logger.js';
import type { KubeApi } from '../../../src/sandbox/kubelet/kube-api.js';
import { PodEventRecorder } from '../../../src/sandbox/kubelet/pod-events.js';
import type { Pod } from '../../../src/sandbox/kubelet/types.js';

interface Sent {
  method: string;
  path: string;
  body: Record<string, unknown>;
}

function recordingApi(sent: Sent[], fail = false): KubeApi {
  return {
    request<T>(method: string, path: string, body?: unknown): Promise<T> {
      sent.push({ method, path, body: body as Record<string, unknown> });
      return fail ? Promise.reject(new Error('503 unavailable')) : Promise.resolve(undefined as T);
    },
  };
}

const pod: Pod = { metadata: { name: 'echo-1', namespace: 'default', uid: 'u-1', resourceVersion: '42' }, spec: { containers: [{ name: 'echo' }] } };

async function settled(): Promise<void> {
  await sleep(10);
}

test('an event names the pod, its container field path, reason, message and the kubelet as source (test double for the API server)', async () => {
  const sent: Sent[] = [];
  new PodEventRecorder(recordingApi(sent), silentLogger, 'node-1').record(pod, 'Failed', 'Error: configmap "echo-config" not found', { container: { name: 'echo', init: false } });
  await settled();
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.method, 'POST');
  assert.equal(sent[0]!.path, '/api/v1/namespaces/default/events');
  const event = sent[0]!.body;
  assert.match((event.metadata as { name: string }).name, /^echo-1\.[0-9a-f]+$/);
  assert.deepEqual(event.involvedObject, { apiVersion: 'v1', kind: 'Pod', namespace: 'default', name: 'echo-1', uid: 'u-1', resourceVersion: '42', fieldPath: 'spec.containers{echo}' });
  assert.equal(event.type, 'Warning');
  assert.equal(event.reason, 'Failed');
  assert.equal(event.message, 'Error: configmap "echo-config" not found');
  assert.deepEqual(event.source, { component: 'kubelet', host: 'node-1' });
  assert.equal(event.count, 1);
});

test('the same event again bumps the count of the first; another reason or container is a new event (test double for the API server)', async () => {
  const sent: Sent[] = [];
  const recorder = new PodEventRecorder(recordingApi(sent), silentLogger, 'node-1');
  const init = { container: { name: 'agent-init', init: true } };
  recorder.record(pod, 'BackOff', 'Back-off restarting failed container', init);
  recorder.record(pod, 'BackOff', 'Back-off restarting failed container', init);
  recorder.record(pod, 'BackOff', 'Back-off restarting failed container', init);
  recorder.record(pod, 'BackOff', 'Back-off restarting failed container', { container: { name: 'echo', init: false } });
  await settled();
  assert.deepEqual(
    sent.map((s) => s.method),
    ['POST', 'POST', 'PATCH', 'PATCH'],
  );
  const first = sent[0]!.body as { metadata: { name: string }; involvedObject: { fieldPath: string } };
  assert.equal(first.involvedObject.fieldPath, 'spec.initContainers{agent-init}');
  assert.equal(sent[2]!.path, `/api/v1/namespaces/default/events/${first.metadata.name}`);
  assert.deepEqual([sent[2]!.body.count, sent[3]!.body.count], [2, 3]);
});

test('a message over 1 KiB is cut; an API server that refuses does not make record throw (test double for the API server)', async () => {
  const sent: Sent[] = [];
  const recorder = new PodEventRecorder(recordingApi(sent, true), silentLogger, 'node-1');
  assert.doesNotThrow(() => recorder.record(pod, 'Failed', 'x'.repeat(5000)));
  await settled();
  assert.equal((sent[0]!.body.message as string).length, 1024);
});
