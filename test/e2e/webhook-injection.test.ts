// The agent injector in the sandbox cluster: `kubetun install` from the workstation, the manager's webhook served
// from its pod, called by the real API server through the manager Service (kube-proxy's DNAT on the node), the
// pods the sandbox's Deployments make checked through the API. Only the pod specs are checked: whether the agent
// runs is the agent's test. `kubetun uninstall` then removes the webhook and the agent label.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { runInNetns } from '../../src/sandbox/host-commands.js';
import { sandboxApi, sandboxConfig, sandboxDown, sandboxUp, workstationCommand } from '../../src/sandbox/index.js';
import { SANDBOX_IMAGES } from '../../src/sandbox/sandbox-config.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NAME = `ktw${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const NS = 'webhook-e2e';
const POD_WAIT_MS = 60_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubetun(args: string[], timeoutMs = 180_000): Promise<Run> {
  const { file, args: argv, env } = workstationCommand(config, ['node', KUBETUN, ...args]);
  return new Promise((resolve) => {
    execFile(file, argv, { env: { ...process.env, ...env }, timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const [answer] = await sandboxApi(config, [{ method, path, ...(body === undefined ? {} : { body }) }]);
  return { status: answer!.status, body: JSON.parse(answer!.body) as T };
}

async function podOf(app: string): Promise<V1Pod> {
  const deadline = Date.now() + POD_WAIT_MS;
  while (Date.now() < deadline) {
    const { body } = await api<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${app}`);
    if (body.items[0] !== undefined) return body.items[0];
    await sleep(500);
  }
  throw new Error(`no pod of ${app} in ${POD_WAIT_MS} ms`);
}

function echoDeployment(name: string, enabled: boolean): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name, ...(enabled ? { 'kubetun.io/agent': 'enabled' } : {}) },
          ...(enabled ? { annotations: { 'kubetun.io/agent-ports': '[{"targetPort":"http","protocol":"TCP"}]', 'kubetun.io/agent-container': 'echo' } } : {}),
        },
        spec: { containers: [{ name: 'echo', image: SANDBOX_IMAGES.echo, ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
      },
    },
  };
}

/**
 * The API server runs in the node namespace and reaches the webhook through the manager's ClusterIP: that needs
 * the node's route to the service CIDR, which the sandbox provides once its change for intercepts is in.
 */
async function serviceRouteMissing(): Promise<string | false> {
  const route = await runInNetns(config.namespaces.node, 'ip', ['route', 'get', '10.96.0.1'], { allowFailure: true });
  return route.code === 0 ? false : 'the sandbox node has no route to the service CIDR yet, so the API server cannot call the webhook';
}

describe('the agent injector in the sandbox', { skip: controlPlaneSkipReason() ?? false }, () => {
  let skip: string | false = false;

  before(async () => {
    await sandboxUp(NAME);
    skip = await serviceRouteMissing();
    if (skip !== false) return;
    const installed = await kubetun(['install']);
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    const [ns] = await sandboxApi(config, [{ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } }]);
    assert.equal(ns?.status, 201, ns?.body);
    for (const d of [echoDeployment('plain', false), echoDeployment('enabled', true)]) {
      const created = await api('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, d);
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
  });

  after(async () => {
    await sandboxDown(NAME);
  });

  test('a Deployment without the label gets pods without the agent', async (t) => {
    if (skip !== false) return t.skip(skip);
    const pod = await podOf('plain');
    assert.deepEqual(pod.spec!.containers.map((c) => c.name), ['echo']);
    assert.equal(pod.metadata!.annotations?.['kubetun.io/injected'], undefined);
  });

  test('a Deployment whose template has the label and annotations gets pods with the agent, its port named http', async (t) => {
    if (skip !== false) return t.skip(skip);
    const pod = await podOf('enabled');
    assert.deepEqual(pod.spec!.containers.map((c) => c.name), ['echo', 'kubetun-agent']);
    const agent = pod.spec!.containers[1]!;
    assert.deepEqual(agent.ports, [{ name: 'http', containerPort: 9900, protocol: 'TCP' }]);
    assert.deepEqual(agent.args, ['traffic-agent']);
    assert.ok(agent.env!.some((e) => e.name === 'KUBETUN_AGENT_CONFIG' && e.value!.includes('"manager":{"host":"traffic-manager.kubetun.svc","port":8083}')));
    assert.deepEqual(pod.spec!.containers[0]!.ports, [{ containerPort: 80, protocol: 'TCP' }]);
  });

  test('uninstall removes the webhook configuration and the agent label', async (t) => {
    if (skip !== false) return t.skip(skip);
    const removed = await kubetun(['uninstall']);
    assert.equal(removed.code, 0, removed.stderr + removed.stdout);
    assert.equal((await api('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubetun-agent-injector-kubetun')).status, 404);
    const { body } = await api<V1Deployment>('GET', `/apis/apps/v1/namespaces/${NS}/deployments/enabled`);
    assert.equal(body.spec!.template.metadata!.labels!['kubetun.io/agent'], undefined);
    assert.deepEqual(body.spec!.template.metadata!.annotations ?? {}, {});
  });
});
