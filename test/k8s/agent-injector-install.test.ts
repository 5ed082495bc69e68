// The agent injector against a real control plane: `kubetun install` registers it, the real API server calls the
// webhook of a real `kubetun traffic-manager` (listening on the manager Service's ClusterIP, added to the test
// namespace's lo: the API server dials a webhook Service by its ClusterIP), and the pods the controller-manager
// creates for Deployments come out injected, or not. Then `kubetun uninstall` removes the webhook first and takes
// the agents out of the workloads. No kubelet: pods are created and checked, never run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { V1Container, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { AGENT_CONFIG_ENV, parseAgentConfig } from '../../src/agent/agent-contract.js';
import { webhookTlsFromSecretData, webhookTlsProblem, webhookDnsNames } from '../../src/k8s/webhook-tls.js';
import { kubetunVersion } from '../../src/version.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import type { ExecResult } from '../helpers/netns.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CLI_TIMEOUT_MS = 90_000;
const POD_WAIT_MS = 60_000;
const NS = 'shop';

function deployment(name: string, template: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): V1Deployment {
  const labels = { app: name, ...template.labels };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels, ...(template.annotations ? { annotations: template.annotations } : {}) },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'registry.test/echo:1',
              ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
              readinessProbe: { httpGet: { path: '/', port: 'http' } },
              env: [
                { name: 'GREETING', value: 'hello' },
                { name: 'COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
              ],
            },
          ],
        },
      },
    },
  };
}

const enabled = (ports: unknown[], extra: Record<string, string> = {}) => ({
  labels: { 'kubetun.io/agent': 'enabled' },
  annotations: { 'kubetun.io/agent-ports': JSON.stringify(ports), 'kubetun.io/agent-container': 'app', ...extra },
});

test('install registers the injector; the API server calls the manager\'s webhook; labelled pods get the agent; uninstall takes it out', { timeout: 600_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'inj');
  if (cp === null) return;
  try {
    await run(t, cp);
  } finally {
    await cp.destroy();
  }
});

async function run(t: import('node:test').TestContext, cp: TestControlPlane): Promise<void> {
  const admin = cp.plane.kubeconfig;
  const kubetun = (args: string[]): Promise<ExecResult> => cp.ns.exec('env', [`KUBECONFIG=${admin}`, process.execPath, MAIN, ...args], { timeoutMs: CLI_TIMEOUT_MS });
  const api = async <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const [answer] = await cp.api([{ method, path, ...(body === undefined ? {} : { body }) }]);
    return { status: answer!.status, body: JSON.parse(answer!.body) as T };
  };
  const podsOf = async (app: string): Promise<V1Pod[]> => {
    const deadline = Date.now() + POD_WAIT_MS;
    while (Date.now() < deadline) {
      const { body } = await api<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${app}`);
      if (body.items.length > 0) return body.items;
      await sleep(500);
    }
    throw new Error(`no pod of deployment ${app} within ${POD_WAIT_MS} ms`);
  };
  const create = async (path: string, object: unknown): Promise<void> => {
    const { status, body } = await api('POST', path, object);
    assert.equal(status, 201, JSON.stringify(body));
  };

  // Install: the manager's pod is never scheduled (no kubelet), so the wait fails; every object is there.
  const installed = await kubetun(['install', '--timeout', '2']);
  for (const line of installed.stdout.trimEnd().split('\n')) t.diagnostic(line);
  assert.match(installed.stdout, /^secret\/traffic-manager-webhook-tls created$/m);
  assert.match(installed.stdout, /^mutatingwebhookconfiguration\/kubetun-agent-injector-kubetun created$/m);
  const secret = await api<{ data: Record<string, string> }>('GET', '/api/v1/namespaces/kubetun/secrets/traffic-manager-webhook-tls');
  const tls = webhookTlsFromSecretData(secret.body.data);
  assert.equal(webhookTlsProblem(tls, webhookDnsNames('traffic-manager', 'kubetun')), null);
  const config = await api<{ webhooks: { clientConfig: { caBundle: string } }[] }>('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubetun-agent-injector-kubetun');
  assert.equal(Buffer.from(config.body.webhooks[0]!.clientConfig.caBundle, 'base64').toString(), tls.caPem, 'the caBundle is the Secret\'s CA');

  // A second install keeps the Secret, so the mounted certificate and the caBundle stay a pair.
  const again = await kubetun(['install', '--timeout', '2']);
  assert.match(again.stdout, /^secret\/traffic-manager-webhook-tls unchanged$/m);
  assert.match(again.stdout, /^mutatingwebhookconfiguration\/kubetun-agent-injector-kubetun unchanged$/m);

  // The real manager serves the webhook where the API server calls it: the Service's ClusterIP, port 443.
  const service = await api<{ spec: { clusterIP: string } }>('GET', '/api/v1/namespaces/kubetun/services/traffic-manager');
  const clusterIp = service.body.spec.clusterIP;
  assert.equal((await cp.ns.exec('ip', ['addr', 'add', `${clusterIp}/32`, 'dev', 'lo'])).code, 0);
  writeFileSync(join(cp.stateDir, 'webhook.crt'), tls.certPem!);
  writeFileSync(join(cp.stateDir, 'webhook.key'), tls.keyPem!, { mode: 0o600 });
  const manager = cp.ns.spawn(process.execPath, [
    MAIN, 'traffic-manager', '--pod-cidr', '10.244.0.0/16', '--service-cidr', '10.96.0.0/12', '--listen', '127.0.0.1:18081',
    // --agent-listen checks arriving agents with the API: the manager needs a kubeconfig outside a pod.
    '--kubeconfig', admin, '--agent-listen', '127.0.0.1:18083', '--webhook-listen', `${clusterIp}:443`,
    '--webhook-cert', join(cp.stateDir, 'webhook.crt'), '--webhook-key', join(cp.stateDir, 'webhook.key'),
    '--agent-image', 'registry.test/traffic-manager:9', '--agent-manager-address', 'traffic-manager.kubetun.svc:8083', '--log-level', 'debug',
  ]);
  let managerLog = '';
  manager.stderr!.on('data', (chunk: Buffer) => (managerLog += chunk.toString()));
  while (!managerLog.includes('agent injector webhook listening')) {
    const [exit] = await Promise.race([once(manager.stderr!, 'data').then(() => [null]), once(manager, 'exit')]);
    if (exit !== null) assert.fail(`the manager exited: ${managerLog}`);
  }

  await create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await create(`/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'echo-config' }, data: { color: 'blue' } });
  for (const d of [
    deployment('plain'),
    deployment('named', enabled([{ targetPort: 'http', protocol: 'TCP' }])),
    deployment('numeric', enabled([{ targetPort: 8080, protocol: 'TCP' }])),
    deployment('replaced', enabled([{ targetPort: 'http', protocol: 'TCP' }], { 'kubetun.io/replace': 'alice' })),
    deployment('spoiled', enabled([{ targetPort: 'grpc', protocol: 'TCP' }])),
  ]) {
    await create(`/apis/apps/v1/namespaces/${NS}/deployments`, d);
  }

  await t.test('a pod without the label is created as it is: no agent, no annotation', async () => {
    const [pod] = await podsOf('plain');
    assert.deepEqual(pod!.spec!.containers.map((c) => c.name), ['app']);
    assert.equal(pod!.metadata!.annotations?.['kubetun.io/injected'], undefined);
    assert.doesNotMatch(managerLog, /"pod":"plain-/, 'the webhook was called for an unlabelled pod');
  });

  await t.test('named targetPort: the agent takes the name, the app port and its probe the number; the env arrives prefixed', async () => {
    const [pod] = await podsOf('named');
    const [app, agent] = pod!.spec!.containers as [V1Container, V1Container];
    assert.deepEqual(pod!.spec!.containers.map((c) => c.name), ['app', 'kubetun-agent']);
    assert.equal(pod!.metadata!.annotations!['kubetun.io/injected'], kubetunVersion());
    assert.deepEqual(app.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
    assert.equal(app.readinessProbe!.httpGet!.port, 8080);
    assert.deepEqual(agent.ports, [{ name: 'http', containerPort: 9900, protocol: 'TCP' }]);
    assert.equal(agent.image, 'registry.test/traffic-manager:9');
    assert.deepEqual(agent.args, ['traffic-agent']);
    const config = parseAgentConfig(agent.env!.find((e) => e.name === AGENT_CONFIG_ENV)!.value);
    assert.deepEqual([config.workload, config.kind, config.namespace, config.container], ['named', 'Deployment', NS, 'app']);
    assert.deepEqual(config.manager, { host: 'traffic-manager.kubetun.svc', port: 8083 });
    assert.deepEqual(agent.env!.find((e) => e.name === 'KTAPP_COLOR')!.valueFrom!.configMapKeyRef, { name: 'echo-config', key: 'color' });
    assert.equal(pod!.spec!.initContainers, undefined);
  });

  await t.test('numeric targetPort: the init container with NET_ADMIN alone', async () => {
    const [pod] = await podsOf('numeric');
    const [init] = pod!.spec!.initContainers!;
    assert.equal(init!.name, 'kubetun-agent-init');
    assert.deepEqual(init!.securityContext!.capabilities, { add: ['NET_ADMIN'], drop: ['ALL'] });
    assert.equal(pod!.spec!.containers.find((c) => c.name === 'kubetun-agent')!.securityContext!.capabilities!.add, undefined);
  });

  await t.test('replace: the app container is left out of the pod', async () => {
    const [pod] = await podsOf('replaced');
    assert.deepEqual(pod!.spec!.containers.map((c) => c.name), ['kubetun-agent']);
  });

  await t.test('an annotation it cannot serve: the pod is created without the agent, and the manager logs why', async () => {
    const [pod] = await podsOf('spoiled');
    assert.deepEqual(pod!.spec!.containers.map((c) => c.name), ['app']);
    assert.match(managerLog, /"msg":"agent not injected".*has no TCP port named \\"grpc\\"/);
  });

  await t.test('with the manager down, a labelled pod is still created (failurePolicy Ignore), without the agent', async () => {
    manager.kill('SIGTERM');
    await once(manager, 'exit');
    await create(`/apis/apps/v1/namespaces/${NS}/deployments`, deployment('later', enabled([{ targetPort: 'http', protocol: 'TCP' }])));
    const [pod] = await podsOf('later');
    assert.deepEqual(pod!.spec!.containers.map((c) => c.name), ['app']);
  });

  await t.test('uninstall removes the webhook first, then takes the label and kubetun annotations off enabled workloads only', async () => {
    const before = await api<V1Deployment>('GET', `/apis/apps/v1/namespaces/${NS}/deployments/plain`);
    const removed = await kubetun(['uninstall', '--timeout', '60']);
    for (const line of removed.stdout.trimEnd().split('\n')) t.diagnostic(line);
    assert.equal(removed.code, 0, removed.stderr);
    const lines = removed.stdout.split('\n');
    assert.equal(lines[0], 'mutatingwebhookconfiguration/kubetun-agent-injector-kubetun deleted');
    for (const name of ['named', 'numeric', 'replaced', 'spoiled', 'later']) {
      assert.ok(lines.includes(`deployment/${name} in namespace ${NS}: agent removed (its pods roll out)`), name);
      const { body } = await api<V1Deployment>('GET', `/apis/apps/v1/namespaces/${NS}/deployments/${name}`);
      const meta = body.spec!.template.metadata!;
      assert.equal(meta.labels!['kubetun.io/agent'], undefined, name);
      assert.deepEqual(Object.keys(meta.annotations ?? {}).filter((k) => k.startsWith('kubetun.io/')), [], name);
      assert.equal(meta.labels!.app, name, 'other labels stay');
    }
    const after = await api<V1Deployment>('GET', `/apis/apps/v1/namespaces/${NS}/deployments/plain`);
    assert.equal(after.body.metadata!.resourceVersion, before.body.metadata!.resourceVersion, 'an unrelated workload was changed');
    assert.equal((await api('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubetun-agent-injector-kubetun')).status, 404);
    assert.equal((await api('GET', '/api/v1/namespaces/kubetun/secrets/traffic-manager-webhook-tls')).status, 404);
  });
}
