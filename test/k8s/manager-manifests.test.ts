// The traffic manager's objects as data, and the pure parts of applying them (no cluster: see install.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadAllYaml, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import {
  ManifestError,
  checkNamespaceName,
  managerManifests,
  manifestList,
  manifestsJson,
  manifestsYaml,
} from '../../src/k8s/manager-manifests.js';
import { covers, overlay, rolledOut, whyNotAvailable } from '../../src/k8s/installer.js';

const manifests = managerManifests({ namespace: 'kubetun', version: '1.2.3' });

test('every object carries the three labels, and namespaced ones sit in the namespace', () => {
  const objects = manifestList(manifests);
  assert.deepEqual(objects.map((o) => o.kind), [
    'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'NetworkPolicy', 'Secret', 'Deployment', 'Service',
    'MutatingWebhookConfiguration',
  ]);
  for (const object of objects) {
    assert.deepEqual(object.metadata?.labels, {
      'app.kubernetes.io/name': 'traffic-manager',
      'app.kubernetes.io/managed-by': 'kubetun',
      'app.kubernetes.io/version': '1.2.3',
    });
  }
  for (const object of [manifests.serviceAccount, manifests.role, manifests.roleBinding, manifests.networkPolicy, manifests.webhookSecret, manifests.deployment, manifests.service]) {
    assert.equal(object.metadata?.namespace, 'kubetun');
  }
  assert.equal(manifests.clusterRole.metadata?.name, 'kubetun-traffic-manager-kubetun');
  assert.deepEqual(manifests.clusterRoleBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kubetun-traffic-manager-kubetun' });
  assert.deepEqual(manifests.clusterRoleBinding.subjects, [{ kind: 'ServiceAccount', name: 'traffic-manager', namespace: 'kubetun' }]);
});

const grants = (rules: { apiGroups?: string[]; resources?: string[]; verbs: string[] }[]): Set<string> =>
  new Set(rules.flatMap((rule) => rule.apiGroups!.flatMap((group) => rule.resources!.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${resource}${group ? `.${group}` : ''}`)))));

test('the ClusterRole reads what discovery follows and patches only workloads (to enable the agent); no create, nothing it does not use', () => {
  const workloads = ['deployments.apps', 'statefulsets.apps', 'replicasets.apps'];
  assert.deepEqual(
    grants(manifests.clusterRole.rules!),
    new Set([
      ...['nodes', 'pods', 'namespaces', 'services', 'servicecidrs.networking.k8s.io'].flatMap((r) => [`list ${r}`, `watch ${r}`]),
      'get services',
      ...workloads.flatMap((r) => [`get ${r}`, `list ${r}`, `watch ${r}`, `patch ${r}`]),
      'get pods',
      'list events',
    ]),
  );
  assert.ok(manifests.clusterRole.rules!.every((rule) => !rule.verbs.includes('*') && !rule.resources!.includes('*')));
});

test('creating Services (the service-CIDR probe) is granted only in the manager namespace, by a Role', () => {
  assert.equal(manifests.role.kind, 'Role');
  assert.deepEqual(manifests.role.metadata, { name: 'traffic-manager', namespace: 'kubetun', labels: manifests.deployment.metadata!.labels });
  assert.deepEqual(grants(manifests.role.rules!), new Set(['create services']));
  assert.deepEqual(manifests.roleBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'traffic-manager' });
  assert.deepEqual(manifests.roleBinding.subjects, [{ kind: 'ServiceAccount', name: 'traffic-manager', namespace: 'kubetun' }]);
});

test('the NetworkPolicy lets only the health, agent and webhook ports into the manager pods', () => {
  assert.deepEqual(manifests.networkPolicy.spec, {
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'traffic-manager' } },
    policyTypes: ['Ingress'],
    ingress: [{ ports: [{ protocol: 'TCP', port: 8082 }, { protocol: 'TCP', port: 8083 }, { protocol: 'TCP', port: 8444 }] }],
  });
});

test('the Deployment runs the manager non-root on its pod loopback, with HTTP probes on the health port, limits and no privileges', () => {
  const spec = manifests.deployment.spec!;
  assert.equal(spec.replicas, 1);
  assert.deepEqual(spec.selector.matchLabels, { 'app.kubernetes.io/name': 'traffic-manager' });
  const pod = spec.template.spec!;
  assert.equal(pod.serviceAccountName, 'traffic-manager');
  const [container] = pod.containers;
  assert.equal(container!.image, 'ghcr.io/kubetun/traffic-manager:1.2.3');
  assert.deepEqual(container!.args, [
    'traffic-manager', '--listen', '127.0.0.1:8081', '--health-listen', '[::]:8082', '--pod-cidr-strategy', 'auto',
    '--agent-listen', '0.0.0.0:8083', '--webhook-listen', '0.0.0.0:8444',
    '--webhook-cert', '/etc/kubetun/webhook-tls/tls.crt', '--webhook-key', '/etc/kubetun/webhook-tls/tls.key',
    '--agent-image', 'ghcr.io/kubetun/traffic-manager:1.2.3', '--agent-manager-address', 'traffic-manager.kubetun.svc:8083',
  ]);
  assert.deepEqual(
    container!.env!.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    [['POD_IP', 'status.podIP'], ['POD_NAME', 'metadata.name'], ['POD_NAMESPACE', 'metadata.namespace']],
  );
  assert.deepEqual(container!.ports, [
    { name: 'api', containerPort: 8081, protocol: 'TCP' },
    { name: 'health', containerPort: 8082, protocol: 'TCP' },
    { name: 'agent', containerPort: 8083, protocol: 'TCP' },
    { name: 'webhook', containerPort: 8444, protocol: 'TCP' },
  ]);
  assert.deepEqual(container!.volumeMounts, [{ name: 'webhook-tls', mountPath: '/etc/kubetun/webhook-tls', readOnly: true }]);
  assert.deepEqual(pod.volumes, [{ name: 'webhook-tls', secret: { secretName: 'traffic-manager-webhook-tls', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] } }]);
  assert.deepEqual(container!.readinessProbe, { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 2 });
  assert.deepEqual(container!.livenessProbe, { httpGet: { path: '/healthz', port: 'health' }, periodSeconds: 10 });
  assert.deepEqual(container!.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } });
  assert.deepEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(container!.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  // The Service selects exactly the pods the Deployment makes.
  assert.deepEqual(manifests.service.spec, {
    type: 'ClusterIP',
    selector: spec.selector.matchLabels,
    ports: [
      { name: 'api', port: 8081, targetPort: 'api', protocol: 'TCP' },
      { name: 'agent', port: 8083, targetPort: 'agent', protocol: 'TCP' },
      { name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' },
    ],
  });
  const custom = managerManifests({ namespace: 'tools', version: '1.2.3', image: 'registry.local/tm:dev' });
  assert.equal(custom.deployment.spec!.template.spec!.containers[0]!.image, 'registry.local/tm:dev');
  assert.deepEqual(custom.deployment.spec!.template.spec!.containers[0]!.args!.slice(-4), ['--agent-image', 'registry.local/tm:dev', '--agent-manager-address', 'traffic-manager.tools.svc:8083']);
  assert.equal(custom.clusterRoleBinding.metadata?.name, 'kubetun-traffic-manager-tools');
});

test('YAML is one document per object and reads back to the same objects; JSON is a v1 List', () => {
  const objects = manifestList(manifests);
  const yaml = manifestsYaml(objects);
  assert.equal(yaml.match(/^---$/gm)?.length, objects.length);
  const back = loadAllYaml(yaml) as unknown[];
  assert.equal(back.length, objects.length);
  // Read back through client-node's typed models: every field survives (a typo'd field name would not).
  back.forEach((object, i) => assert.ok(covers(JSON.parse(JSON.stringify(object)), objects[i]), `${objects[i]!.kind} changed in YAML`));
  const list = JSON.parse(manifestsJson(objects)) as { apiVersion: string; kind: string; items: unknown[] };
  assert.equal(list.kind, 'List');
  assert.deepEqual(list.items, JSON.parse(JSON.stringify(objects)));
});

test('namespace names: DNS labels pass, anything else is refused with the rule', () => {
  const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  fc.assert(fc.property(label, (name) => checkNamespaceName(name) === undefined));
  for (const bad of ['Kubetun', 'kube_tun', '-kubetun', 'kubetun-', '', 'a'.repeat(64), 'a.b']) {
    assert.throws(() => managerManifests({ namespace: bad, version: '1' }), (e: unknown) => e instanceof ManifestError && /not a valid namespace name/.test(e.message), bad);
  }
});

test('covers: server-added fields do not matter, changed values and array lengths do', () => {
  const desired = { a: 1, b: { c: ['x', 'y'], d: { e: true } } };
  assert.ok(covers({ a: 1, z: 9, b: { c: ['x', 'y'], d: { e: true, f: 0 }, g: 'extra' } }, desired));
  assert.ok(!covers({ a: 2, b: desired.b }, desired));
  assert.ok(!covers({ a: 1, b: { c: ['x'], d: { e: true } } }, desired));
  assert.ok(!covers({ a: 1, b: { c: ['x', 'y', 'z'], d: { e: true } } }, desired));
  assert.ok(!covers({ a: 1 }, desired));
  // Property: any object covers itself, and adding fields keeps it covered.
  fc.assert(
    fc.property(fc.object(), fc.string(), fc.integer(), (object, key, value) => covers(object, object) && (key in object || covers({ ...object, [key]: value }, object))),
  );
});

test('overlay keeps fields the server owns and replaces what kubetun manages', () => {
  const existing = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'traffic-manager', namespace: 'kubetun', resourceVersion: '42', labels: { 'app.kubernetes.io/version': '1.0.0', extra: 'kept' } },
    spec: { clusterIP: '10.96.0.20', ports: [{ port: 80 }], type: 'ClusterIP' },
  };
  const merged = overlay(existing, manifests.service) as typeof existing;
  assert.equal(merged.metadata.resourceVersion, '42');
  assert.equal(merged.metadata.labels['app.kubernetes.io/version'], '1.2.3');
  assert.equal(merged.metadata.labels.extra, 'kept');
  assert.equal(merged.spec.clusterIP, '10.96.0.20');
  assert.deepEqual(merged.spec.ports, manifests.service.spec!.ports);
  assert.ok(covers(merged, manifests.service));
});

test('rolledOut follows kubectl rollout status: new revision updated and available, old replicas gone', () => {
  const at = (status: V1Deployment['status'], generation = 2): V1Deployment => ({ metadata: { generation }, spec: { replicas: 1, selector: {}, template: {} }, status });
  assert.ok(rolledOut(at({ observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 })));
  assert.ok(!rolledOut(at({ observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 })), 'not yet observed');
  assert.ok(!rolledOut(at({ observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 })), 'old pod still there');
  assert.ok(!rolledOut(at({ observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 0 })), 'not available');
  assert.ok(!rolledOut(at(undefined)), 'no status yet');
});

test('whyNotAvailable names each pod and what it waits for, or the Deployment failure when there is none', () => {
  const deployment: V1Deployment = {
    metadata: { name: 'traffic-manager' },
    status: { conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'pods "x" is forbidden: exceeded quota' }] },
  };
  const pull: V1Pod = {
    metadata: { name: 'traffic-manager-7d9-abcde' },
    status: { phase: 'Pending', containerStatuses: [{ name: 'tm', image: 'i', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }] },
  };
  const unscheduled: V1Pod = {
    metadata: { name: 'traffic-manager-7d9-fghij' },
    status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/0 nodes are available' }] },
  };
  assert.equal(
    whyNotAvailable(deployment, [pull, unscheduled], 'kubetun'),
    'pod traffic-manager-7d9-abcde: container tm is waiting: ErrImagePull (not found); pod traffic-manager-7d9-fghij: it is not scheduled: 0/0 nodes are available; ' +
      'see "kubectl -n kubetun describe pod traffic-manager-7d9-abcde"',
  );
  assert.match(whyNotAvailable(deployment, [], 'kubetun'), /has no pod: pods "x" is forbidden: exceeded quota/);
  assert.match(whyNotAvailable(null, [], 'kubetun'), /has disappeared/);
});
