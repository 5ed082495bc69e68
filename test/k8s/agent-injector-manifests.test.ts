// The agent injector's objects as data: the webhook registration, its Secret, and the manager flags the
// manifests give (as the manager parses them).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { webhookConfigurationName } from '../../src/k8s/agent-injector-manifests.js';
import { managerManifests } from '../../src/k8s/manager-manifests.js';
import { createWebhookTls, webhookDnsNames, webhookTlsFromSecretData } from '../../src/k8s/webhook-tls.js';
import { managerSettings } from '../../src/manager/manager-config.js';

const tls = createWebhookTls(webhookDnsNames('traffic-manager', 'tools'));
const manifests = managerManifests({ namespace: 'tools', version: '1.2.3', webhookTls: tls });

test('the MutatingWebhookConfiguration: the manager Service on 443, the CA, pod creation of labelled pods only, never blocking', () => {
  const config = manifests.webhookConfiguration;
  assert.equal(config.metadata?.name, 'kubetun-agent-injector-tools');
  assert.equal(webhookConfigurationName('tools'), config.metadata?.name);
  assert.equal(config.metadata?.namespace, undefined, 'cluster-scoped');
  assert.deepEqual(config.webhooks, [
    {
      name: 'agent-injector.kubetun.io',
      clientConfig: { service: { namespace: 'tools', name: 'traffic-manager', path: '/mutate-pods', port: 443 }, caBundle: Buffer.from(tls.caPem).toString('base64') },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      objectSelector: { matchLabels: { 'kubetun.io/agent': 'enabled' } },
      failurePolicy: 'Ignore',
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      timeoutSeconds: 5,
      reinvocationPolicy: 'Never',
    },
  ]);
});

test('the Secret holds the CA, the certificate and its key, as a kubernetes.io/tls Secret', () => {
  const secret = manifests.webhookSecret;
  assert.equal(secret.type, 'kubernetes.io/tls');
  assert.deepEqual(secret.metadata?.name, 'traffic-manager-webhook-tls');
  assert.deepEqual(webhookTlsFromSecretData(secret.data), tls);
});

test('without TLS (what uninstall builds to find the objects) there is neither data nor caBundle', () => {
  const bare = managerManifests({ namespace: 'tools', version: '1.2.3' });
  assert.equal(bare.webhookSecret.data, undefined);
  assert.equal(bare.webhookConfiguration.webhooks![0]!.clientConfig.caBundle, undefined);
});

test("the manager accepts the manifests' webhook flags: the listeners, the mounted files, the image and the agents' address", () => {
  const args = manifests.deployment.spec!.template.spec!.containers[0]!.args!;
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args[i + 1];
  };
  const settings = managerSettings(
    {
      agentListen: flag('--agent-listen'),
      webhookListen: flag('--webhook-listen'),
      webhookCert: flag('--webhook-cert'),
      webhookKey: flag('--webhook-key'),
      agentImage: flag('--agent-image'),
      agentManagerAddress: flag('--agent-manager-address'),
    },
    {},
  );
  assert.deepEqual(settings.agentListen, { host: '0.0.0.0', port: 8083 });
  assert.deepEqual(settings.webhook, {
    host: '0.0.0.0',
    port: 8444,
    certFile: '/etc/kubetun/webhook-tls/tls.crt',
    keyFile: '/etc/kubetun/webhook-tls/tls.key',
    agentImage: 'ghcr.io/kubetun/traffic-manager:1.2.3',
    managerAddress: { host: 'traffic-manager.tools.svc', port: 8083 },
  });
});
