// `kubetun install --tls-secret`: the manager's TLS listener for direct clients, and only then the review grants.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManifestError, managerManifests } from '../../src/k8s/manager-manifests.js';
import { managerSettings } from '../../src/manager/manager-config.js';

const REVIEW_RULES = [
  { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
];

test('without --tls-secret: no TLS port, no TLS Secret volume (the webhook\'s only), no review grants', () => {
  const plain = managerManifests({ namespace: 'kubetun', version: '1' });
  const container = plain.deployment.spec!.template.spec!.containers[0]!;
  assert.ok(!container.args!.includes('--listen-tls'));
  assert.deepEqual(plain.deployment.spec!.template.spec!.volumes!.map((v) => v.name), ['webhook-tls']);
  assert.ok(!plain.service.spec!.ports!.some((p) => p.port === 8443));
  assert.deepEqual(plain.networkPolicy.spec!.ingress!.flatMap((rule) => rule.ports!.map((p) => p.port)), [8082, 8083, 8444], 'health, agents and the webhook only');
  for (const rule of REVIEW_RULES) assert.ok(!plain.clusterRole.rules!.some((r) => r.resources!.includes(rule.resources[0]!)));
});

test('with --tls-secret: TLS on 8443 from the Secret mounted read-only, on the Service and in the NetworkPolicy, and the review grants', () => {
  const m = managerManifests({ namespace: 'kubetun', version: '1', tlsSecret: 'manager-tls' });
  const pod = m.deployment.spec!.template.spec!;
  const container = pod.containers[0]!;
  const args = container.args!;
  assert.deepEqual(args.slice(args.indexOf('--listen-tls')), ['--listen-tls', '[::]:8443', '--tls-cert', '/etc/kubetun/tls/tls.crt', '--tls-key', '/etc/kubetun/tls/tls.key']);
  assert.ok(container.ports!.some((p) => p.name === 'api-tls' && p.containerPort === 8443));
  assert.deepEqual(container.volumeMounts!.at(-1), { name: 'tls', mountPath: '/etc/kubetun/tls', readOnly: true });
  assert.deepEqual(pod.volumes!.at(-1), { name: 'tls', secret: { secretName: 'manager-tls' } });
  assert.ok(m.service.spec!.ports!.some((p) => p.name === 'api-tls' && p.port === 8443 && p.targetPort === 'api-tls'));
  assert.deepEqual(m.networkPolicy.spec!.ingress!.flatMap((rule) => rule.ports!.map((p) => p.port)), [8082, 8083, 8444, 8443]);
  for (const rule of REVIEW_RULES) assert.ok(m.clusterRole.rules!.some((r) => JSON.stringify(r) === JSON.stringify(rule)), rule.resources[0]);
  assert.throws(() => managerManifests({ namespace: 'kubetun', version: '1', tlsSecret: 'Bad_Name' }), ManifestError);
});

test("the TLS listener's arguments are ones the manager accepts in a pod: Kubernetes client authentication", () => {
  const args = managerManifests({ namespace: 'kubetun', version: '1', tlsSecret: 'manager-tls' }).deployment.spec!.template.spec!.containers[0]!.args!;
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args[i + 1];
  };
  const inPod = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  // The main listener is the other helper's to move to loopback; the TLS one is judged on its own here.
  const settings = managerSettings({ listen: '127.0.0.1:8081', listenTls: flag('--listen-tls'), tlsCert: flag('--tls-cert'), tlsKey: flag('--tls-key') }, inPod);
  assert.deepEqual(settings.clientAuth, { mode: 'kubernetes' });
  assert.deepEqual(settings.tlsListen, { host: '::', port: 8443 });
});
