// The real WorkloadApi and agent verifier against a real kube-apiserver (test/helpers/control-plane.ts): finding
// a workload and the Services selecting it, the enabling patch (and its 403 naming the RBAC), and the verification
// of an agent's pod through its ReplicaSet to its Deployment. The probe runs inside the control plane's namespace.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { AGENT_CONTAINER, AGENT_LABEL, AGENT_PORTS_ANNOTATION } from '../../../src/agent/agent-contract.js';
import { adminKubeconfigPath } from '../../../src/sandbox/control-plane/control-plane.js';
import type { ApiRequest } from '../../../src/sandbox/control-plane/api-request.js';
import type { Workload } from '../../../src/manager/intercepts/workload-api.js';
import type { ResolvedPort } from '../../../src/manager/intercepts/workload-ports.js';
import { startTestControlPlane, type TestControlPlane } from '../../helpers/control-plane.js';
import { serviceAccountKubeconfig } from '../../sandbox/cluster-dns/service-account.js';

const PROBE = fileURLToPath(new URL('./workload-api-probe.js', import.meta.url));

interface ProbeResult {
  workload: Workload;
  missing: null;
  ports: ResolvedPort[];
  listed: string[];
  patch: string;
  patched: Workload;
  verified: string;
  wrongIp: string;
  wrongWorkload: string;
}

interface PodObject {
  metadata: { name: string };
  status?: object;
}

async function probe(cp: TestControlPlane, args: string[]): Promise<ProbeResult> {
  const run = await cp.ns.exec(process.execPath, [PROBE, ...args], { timeoutMs: 60_000 });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as ProbeResult;
}

async function ok(cp: TestControlPlane, method: ApiRequest['method'], path: string, body?: object): Promise<unknown> {
  const [answer] = await cp.api([{ method, path, ...(body ? { body } : {}) }]);
  assert.ok(answer!.status >= 200 && answer!.status < 300, `${method} ${path}: ${answer!.status} ${answer!.body}`);
  return JSON.parse(answer!.body);
}

test('the real API: find, services, enable (403 names the RBAC), and an agent pod verified through its owners', { timeout: 240_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'wlapi');
  if (cp === null) return;
  const dir = mkdtempSync(join(tmpdir(), 'kt-wlapi-'));
  try {
    await ok(cp, 'POST', '/apis/apps/v1/namespaces/default/deployments', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'echo' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'echo' } },
        template: {
          metadata: { labels: { app: 'echo' } },
          spec: {
            containers: [
              { name: 'echo', image: 'example.invalid/echo:1', ports: [{ name: 'http', containerPort: 8080 }] },
              // As the webhook would have injected it.
              { name: AGENT_CONTAINER, image: 'example.invalid/kubetun:1' },
            ],
          },
        },
      },
    });
    await ok(cp, 'POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'echo' },
      spec: { selector: { app: 'echo' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }, { name: 'raw', port: 81, targetPort: 8080 }] },
    });
    // The controller-manager makes the ReplicaSet and its pod; no kubelet runs, so the pod's IP is written as one would.
    let pod: PodObject | undefined;
    for (let i = 0; i < 300 && pod === undefined; i++) {
      pod = ((await ok(cp, 'GET', '/api/v1/namespaces/default/pods')) as { items: PodObject[] }).items[0];
      if (pod === undefined) await sleep(200);
    }
    if (pod === undefined) assert.fail('the Deployment got no pod');
    pod.status = { ...pod.status, podIP: '10.244.0.42', podIPs: [{ ip: '10.244.0.42' }] };
    await ok(cp, 'PUT', `/api/v1/namespaces/default/pods/${pod.metadata.name}/status`, pod);

    const result = await probe(cp, [adminKubeconfigPath(cp.stateDir), 'full', pod.metadata.name, '10.244.0.42']);
    assert.equal(result.workload.name, 'echo');
    assert.deepEqual(result.workload.containers[0], { name: 'echo', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] });
    assert.equal(result.missing, null);
    assert.deepEqual(
      result.ports.map((p) => [p.service, p.name, p.targetPort, p.takeover, p.containerPort, p.container]),
      [
        ['echo', 'web', 'http', 'named-port', 8080, 'echo'],
        ['echo', 'raw', 8080, 'init-container', 8080, 'echo'],
      ],
    );
    assert.ok(result.listed.includes('Deployment/default/echo'), result.listed.join(' '));
    assert.ok(result.listed.some((w) => /^ReplicaSet\/default\/echo-.*<Deployment$/.test(w)), result.listed.join(' '));
    assert.equal(result.patch, 'ok');
    assert.equal(result.patched.templateLabels[AGENT_LABEL], 'enabled');
    assert.equal(result.patched.templateAnnotations[AGENT_PORTS_ANNOTATION], '[{"targetPort":8080,"protocol":"TCP"},{"targetPort":"http","protocol":"TCP"}]');
    assert.equal(result.verified, 'ok');
    assert.match(result.wrongIp, /the caller's address 10\.244\.9\.9 is not an address of the pod/);
    assert.match(result.wrongWorkload, /belongs to Deployment echo, not to Deployment other/);

    const readOnly = join(dir, 'read-only.kubeconfig');
    await serviceAccountKubeconfig(cp, 'read-only', [{ apiGroups: ['', 'apps'], resources: ['deployments', 'services', 'pods', 'replicasets'], verbs: ['get', 'list'] }], readOnly);
    const refused = await probe(cp, [readOnly, 'patch']);
    assert.match(refused.patch, /^7: .*"patch" on deployments\.apps in namespace default/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await cp.destroy();
  }
});
