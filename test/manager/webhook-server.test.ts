// The webhook's HTTPS endpoint on loopback, with a certificate from kubetun's own CA: AdmissionReview round
// trips as the API server makes them, and the requests it refuses.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { AGENT_CONTAINER, AGENT_LABEL, AGENT_PORTS_ANNOTATION } from '../../src/agent/agent-contract.js';
import { createWebhookTls, webhookDnsNames } from '../../src/k8s/webhook-tls.js';
import { createLogger } from '../../src/log/logger.js';
import { MAX_REVIEW_BYTES, startWebhookServer, type WebhookServer } from '../../src/manager/webhook/webhook-server.js';
import { applyPatch } from './webhook-patch-apply.js';

const NAMES = webhookDnsNames('traffic-manager', 'kubetun');
const tls = createWebhookTls(NAMES);
const dir = mkdtempSync(join(tmpdir(), 'kt-webhook-'));
const logs: Record<string, unknown>[] = [];
let server: WebhookServer;

before(async () => {
  writeFileSync(join(dir, 'tls.crt'), tls.certPem);
  writeFileSync(join(dir, 'tls.key'), tls.keyPem);
  const log = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const settings = {
    host: '127.0.0.1',
    port: 0,
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    agentImage: 'registry.test/tm:1',
    managerAddress: { host: 'traffic-manager.kubetun.svc', port: 8083 },
  };
  server = await startWebhookServer(settings, log, '1.2.3');
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
}

function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Answer> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, servername: NAMES[0], ca: tls.caPem, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    // A refused upload may be cut short by the server: the answer still arrives.
    req.on('error', reject);
    req.end(body);
  });
}

const pod = (labelled: boolean): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'echo-abc12-',
    labels: { 'pod-template-hash': 'abc12', ...(labelled ? { [AGENT_LABEL]: 'enabled' } : {}) },
    annotations: { [AGENT_PORTS_ANNOTATION]: '[{"targetPort":"http","protocol":"TCP"}]' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'echo-abc12', uid: 'u', controller: true }],
  },
  spec: { containers: [{ name: 'echo', image: 'echo:1', ports: [{ name: 'http', containerPort: 8080 }] }] },
});

const review = (uid: string, object: unknown, kind = 'Pod', operation = 'CREATE') =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { group: '', version: 'v1', kind }, operation, namespace: 'shop', object } });

interface ReviewResponse {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  warnings?: string[];
}

async function admit(body: string): Promise<ReviewResponse> {
  const answer = await call('POST', '/mutate-pods', body);
  assert.equal(answer.status, 200, answer.body);
  const parsed = JSON.parse(answer.body) as { apiVersion: string; kind: string; response: ReviewResponse };
  assert.equal(parsed.apiVersion, 'admission.k8s.io/v1');
  assert.equal(parsed.kind, 'AdmissionReview');
  return parsed.response;
}

test('a labelled pod: allowed with a base64 JSONPatch that adds the agent', async () => {
  const response = await admit(review('uid-1', pod(true)));
  assert.equal(response.uid, 'uid-1');
  assert.equal(response.allowed, true);
  assert.equal(response.patchType, 'JSONPatch');
  const patched = applyPatch(pod(true), JSON.parse(Buffer.from(response.patch!, 'base64').toString()));
  assert.deepEqual(patched.spec!.containers.map((c) => c.name), ['echo', AGENT_CONTAINER]);
  assert.equal(patched.spec!.containers[1]!.image, 'registry.test/tm:1');
  assert.equal(patched.metadata!.annotations!['kubetun.io/injected'], '1.2.3');
});

test('an unlabelled pod, another kind, another operation: allowed without a patch', async () => {
  for (const body of [review('u2', pod(false)), review('u3', { metadata: {} }, 'Service'), review('u4', pod(true), 'Pod', 'UPDATE')]) {
    const response = await admit(body);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.equal(response.patchType, undefined);
  }
});

test('a pod it cannot serve: allowed without a patch, the reason as a warning and in the log', async () => {
  const spoiled = pod(true);
  spoiled.metadata!.annotations![AGENT_PORTS_ANNOTATION] = 'nope';
  const response = await admit(review('u5', spoiled));
  assert.equal(response.allowed, true);
  assert.equal(response.patch, undefined);
  assert.match(response.warnings?.[0] ?? '', /kubetun did not inject its agent: kubetun\.io\/agent-ports is not JSON/);
  assert.ok(logs.some((l) => l.level === 'warn' && l.msg === 'agent not injected' && l.namespace === 'shop'));
});

test('a pod that makes the mutation throw is still allowed, and the failure is logged', async () => {
  const hostile = pod(true) as unknown as { spec: { containers: unknown } };
  hostile.spec.containers = 'not a list';
  const response = await admit(review('u6', hostile));
  assert.equal(response.allowed, true);
  assert.equal(response.patch, undefined);
  assert.ok(logs.some((l) => l.level === 'error' && l.msg === 'agent injection failed; the pod starts without the agent'));
});

test('/healthz answers; wrong path, method, type, body and size are refused with 4xx', async () => {
  assert.equal((await call('GET', '/healthz')).status, 200);
  assert.equal((await call('GET', '/mutate-pods')).status, 405);
  assert.equal((await call('POST', '/elsewhere', '{}')).status, 404);
  assert.equal((await call('POST', '/mutate-pods', review('u', pod(true)), { 'content-type': 'text/plain' })).status, 415);
  assert.equal((await call('POST', '/mutate-pods', '{not json')).status, 400);
  const v1beta1 = JSON.parse(review('u', pod(true))) as { apiVersion: string };
  v1beta1.apiVersion = 'admission.k8s.io/v1beta1';
  assert.equal((await call('POST', '/mutate-pods', JSON.stringify(v1beta1))).status, 400);
  assert.equal((await call('POST', '/mutate-pods', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }))).status, 400);
  const huge = await call('POST', '/mutate-pods', undefined, { 'content-type': 'application/json', 'content-length': String(MAX_REVIEW_BYTES + 1) });
  assert.equal(huge.status, 413);
  // A body without a declared length (chunked) is cut off at the bound as well.
  const chunked = await call('POST', '/mutate-pods', Buffer.alloc(MAX_REVIEW_BYTES + 65_536, 0x20), { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }).catch((error: Error) => ({ status: -1, body: error.message }));
  assert.ok(chunked.status === 413 || /ECONNRESET|EPIPE|socket hang up/.test(chunked.body), `${chunked.status} ${chunked.body}`);
});
