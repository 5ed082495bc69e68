// The agent injector's objects and what it adds to the manager's: the Secret with the webhook's CA and serving
// certificate, the MutatingWebhookConfiguration that sends labelled pods to the manager, and on the manager's
// Deployment, Service and NetworkPolicy the agent listener (8083) and the webhook listener (8444, 443 on the
// Service). Pure data, as the rest of the manifests.

import { createHash } from 'node:crypto';
import type { V1Container, V1MutatingWebhookConfiguration, V1PodTemplateSpec, V1PolicyRule, V1Secret, V1Service, V1NetworkPolicy } from '@kubernetes/client-node';
import { AGENT_LABEL, AGENT_LABEL_VALUE } from '../agent/agent-contract.js';
import { TLS_CERT_KEY, TLS_KEY_KEY, webhookTlsSecretData, type WebhookTls } from './webhook-tls.js';

export const AGENT_LISTEN_PORT = 8083;
export const WEBHOOK_LISTEN_PORT = 8444;
/** The webhook's port on the manager's Service: the API server calls https://traffic-manager.<ns>.svc:443. */
export const WEBHOOK_SERVICE_PORT = 443;
export const WEBHOOK_TLS_SECRET = 'traffic-manager-webhook-tls';
export const WEBHOOK_NAME = 'agent-injector.kubetun.io';
export const WEBHOOK_PATH = '/mutate-pods';
const WEBHOOK_TLS_MOUNT = '/etc/kubetun/webhook-tls';
export const WEBHOOK_CERT_ANNOTATION = 'kubetun.io/webhook-certificate';
// Well inside the API server's 30 s limit: a labelled pod's creation waits at most this long for a manager that
// does not answer, then starts without the agent (failurePolicy Ignore).
const WEBHOOK_TIMEOUT_SECONDS = 5;

/** Cluster-scoped: the namespace in the name keeps two installs apart. */
export const webhookConfigurationName = (namespace: string): string => `kubetun-agent-injector-${namespace}`;

export interface AgentInjectorObjects {
  webhookSecret: V1Secret;
  webhookConfiguration: V1MutatingWebhookConfiguration;
}

interface InjectorOptions {
  namespace: string;
  /** The manager's Service name. */
  service: string;
  labels: Record<string, string>;
  /** The injected agent's image: the manager's own. */
  image: string;
  /** Absent when the objects serve only to be found and deleted (uninstall): no data, no caBundle. */
  tls?: WebhookTls;
}

/** The Secret and the webhook configuration. */
export function agentInjectorObjects(options: InjectorOptions): AgentInjectorObjects {
  const { namespace, service, labels, tls } = options;
  return {
    webhookSecret: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: WEBHOOK_TLS_SECRET, namespace, labels },
      ...(tls === undefined ? {} : { data: webhookTlsSecretData(tls) }),
    },
    webhookConfiguration: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: webhookConfigurationName(namespace), labels },
      webhooks: [
        {
          name: WEBHOOK_NAME,
          clientConfig: {
            service: { namespace, name: service, path: WEBHOOK_PATH, port: WEBHOOK_SERVICE_PORT },
            ...(tls === undefined ? {} : { caBundle: Buffer.from(tls.caPem).toString('base64') }),
          },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          // Only pods of workloads the manager enabled are sent: every other pod is created without a call.
          objectSelector: { matchLabels: { [AGENT_LABEL]: AGENT_LABEL_VALUE } },
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: WEBHOOK_TIMEOUT_SECONDS,
          reinvocationPolicy: 'Never',
        },
      ],
    },
  };
}

/** What the manager needs to enable workloads (patch their pod templates) and explain why an agent is missing. */
export const AGENT_RBAC_RULES: V1PolicyRule[] = [
  { apiGroups: ['apps'], resources: ['deployments', 'statefulsets', 'replicasets'], verbs: ['get', 'list', 'watch', 'patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
  { apiGroups: [''], resources: ['events'], verbs: ['list'] },
];

/** The manager's container and pod serve agents and the webhook; its Service and NetworkPolicy let them in. */
export function addAgentInjector(parts: { template: V1PodTemplateSpec; container: V1Container; service: V1Service; networkPolicy: V1NetworkPolicy }, options: InjectorOptions): void {
  const { template, container, service, networkPolicy } = parts;
  const pod = template.spec!;
  if (options.tls !== undefined) {
    // The manager reads its certificate at start: a new one (and the caBundle that goes with it) rolls it out.
    const fingerprint = createHash('sha256').update(options.tls.certPem).digest('hex').slice(0, 16);
    template.metadata = { ...template.metadata, annotations: { ...template.metadata?.annotations, [WEBHOOK_CERT_ANNOTATION]: fingerprint } };
  }
  container.args = [
    ...(container.args ?? []),
    '--agent-listen',
    `0.0.0.0:${AGENT_LISTEN_PORT}`,
    '--webhook-listen',
    `0.0.0.0:${WEBHOOK_LISTEN_PORT}`,
    '--webhook-cert',
    `${WEBHOOK_TLS_MOUNT}/${TLS_CERT_KEY}`,
    '--webhook-key',
    `${WEBHOOK_TLS_MOUNT}/${TLS_KEY_KEY}`,
    '--agent-image',
    options.image,
    '--agent-manager-address',
    `${options.service}.${options.namespace}.svc:${AGENT_LISTEN_PORT}`,
  ];
  container.ports = [
    ...(container.ports ?? []),
    { name: 'agent', containerPort: AGENT_LISTEN_PORT, protocol: 'TCP' },
    { name: 'webhook', containerPort: WEBHOOK_LISTEN_PORT, protocol: 'TCP' },
  ];
  container.volumeMounts = [...(container.volumeMounts ?? []), { name: 'webhook-tls', mountPath: WEBHOOK_TLS_MOUNT, readOnly: true }];
  // The CA stays out of the pod: the manager needs only its own certificate and key.
  pod.volumes = [...(pod.volumes ?? []), { name: 'webhook-tls', secret: { secretName: WEBHOOK_TLS_SECRET, items: [TLS_CERT_KEY, TLS_KEY_KEY].map((key) => ({ key, path: key })) } }];
  service.spec!.ports = [
    ...(service.spec!.ports ?? []),
    { name: 'agent', port: AGENT_LISTEN_PORT, targetPort: 'agent', protocol: 'TCP' },
    { name: 'webhook', port: WEBHOOK_SERVICE_PORT, targetPort: 'webhook', protocol: 'TCP' },
  ];
  // Agents arrive from their pods and the API server calls the webhook: both cross the pod network.
  const ingress = networkPolicy.spec!.ingress![0]!;
  ingress.ports = [...(ingress.ports ?? []), { protocol: 'TCP', port: AGENT_LISTEN_PORT }, { protocol: 'TCP', port: WEBHOOK_LISTEN_PORT }];
}
