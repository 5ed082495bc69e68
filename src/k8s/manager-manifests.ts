// The objects that run the traffic manager in a cluster, as pure data: `kubetun install` applies them,
// `--dry-run` prints them. Kept least-privileged: the manager reads cluster networking facts cluster-wide and may
// create Services (the service-CIDR probe, a dry run) only in its own namespace; it patches workloads' pod templates
// to enable the agent. Tunnels reach it only on its pod's loopback, i.e. through a port-forward the API server
// authorizes; the pod network reaches only its health port, the agents' port and the webhook's.

import {
  dumpYaml,
  type KubernetesObject,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1Deployment,
  type V1Namespace,
  type V1NetworkPolicy,
  type V1ObjectMeta,
  type V1Role,
  type V1RoleBinding,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { addAgentInjector, agentInjectorObjects, AGENT_RBAC_RULES, type AgentInjectorObjects } from './agent-injector-manifests.js';
import type { WebhookTls } from './webhook-tls.js';

export const DEFAULT_NAMESPACE = 'kubetun';
export const MANAGER_NAME = 'traffic-manager';
export const MANAGER_PORT = 8081;
/** Liveness and readiness only (src/manager/health-endpoint.ts): the one port the pod network may reach. */
export const HEALTH_PORT = 8082;
/** The non-root user and group the manager runs as (distroless' "nonroot"). */
export const MANAGER_UID = 65532;
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kubetun';
export const NAME_LABEL = 'app.kubernetes.io/name';

export interface ManifestOptions {
  namespace: string;
  /** kubetun's version: the image tag and the version label. */
  version: string;
  /** The manager's image; `ghcr.io/kubetun/traffic-manager:<version>` by default. */
  image?: string;
  /** A kubernetes.io/tls Secret in the namespace: the manager also serves TLS for direct clients (directTlsListener). */
  tlsSecret?: string;
  /** The agent injector's CA and certificate; absent when the objects are only to be found and deleted (uninstall). */
  webhookTls?: WebhookTls;
}

export interface ManagerManifests extends AgentInjectorObjects {
  namespace: V1Namespace;
  serviceAccount: V1ServiceAccount;
  clusterRole: V1ClusterRole;
  clusterRoleBinding: V1ClusterRoleBinding;
  role: V1Role;
  roleBinding: V1RoleBinding;
  networkPolicy: V1NetworkPolicy;
  deployment: V1Deployment;
  service: V1Service;
}

export const defaultImage = (version: string): string => `ghcr.io/kubetun/traffic-manager:${version}`;

/** The cluster-scoped names carry the namespace, so that installs in two namespaces do not collide. */
export const clusterRoleName = (namespace: string): string => `kubetun-traffic-manager-${namespace}`;

export const selectorLabels = { [NAME_LABEL]: MANAGER_NAME };

// A DNS-1123 label: what a namespace name must be (and what keeps the ClusterRole's name valid).
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_NAMESPACE_LENGTH = 63;

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

export function checkNamespaceName(namespace: string): void {
  if (!NAMESPACE_NAME.test(namespace) || namespace.length > MAX_NAMESPACE_LENGTH) {
    throw new ManifestError(
      `--namespace "${namespace}" is not a valid namespace name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
}

export function managerManifests(options: ManifestOptions): ManagerManifests {
  const manifests = baseManifests(options);
  if (options.tlsSecret !== undefined) addDirectTlsListener(manifests, options.tlsSecret);
  return manifests;
}

export const MANAGER_TLS_PORT = 8443;
const TLS_MOUNT = '/etc/kubetun/tls';

/**
 * `install --tls-secret`: a TLS listener for clients reaching the manager directly (`connect --manager-url`), its
 * certificate from the Secret mounted read-only, on the Service and in the NetworkPolicy too. Its clients are authenticated with TokenReview
 * and SubjectAccessReview, which the ClusterRole then grants (creating reviews reads or changes nothing).
 */
function addDirectTlsListener(manifests: ManagerManifests, secretName: string): void {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(secretName) || secretName.length > 253) {
    throw new ManifestError(`--tls-secret "${secretName}" is not a valid Secret name: lower-case letters, digits, '-' and '.'`);
  }
  const pod = manifests.deployment.spec!.template.spec!;
  const container = pod.containers[0]!;
  container.args = [...(container.args ?? []), '--listen-tls', `[::]:${MANAGER_TLS_PORT}`, '--tls-cert', `${TLS_MOUNT}/tls.crt`, '--tls-key', `${TLS_MOUNT}/tls.key`];
  container.ports = [...(container.ports ?? []), { name: 'api-tls', containerPort: MANAGER_TLS_PORT, protocol: 'TCP' }];
  container.volumeMounts = [...(container.volumeMounts ?? []), { name: 'tls', mountPath: TLS_MOUNT, readOnly: true }];
  pod.volumes = [...(pod.volumes ?? []), { name: 'tls', secret: { secretName } }];
  manifests.service.spec!.ports = [...(manifests.service.spec!.ports ?? []), { name: 'api-tls', port: MANAGER_TLS_PORT, targetPort: 'api-tls', protocol: 'TCP' }];
  manifests.clusterRole.rules = [
    ...(manifests.clusterRole.rules ?? []),
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
  ];
  // Direct clients cross the pod network: the policy admits the TLS port too (every request on it is authenticated).
  const ingress = manifests.networkPolicy.spec!.ingress![0]!;
  ingress.ports = [...(ingress.ports ?? []), { protocol: 'TCP', port: MANAGER_TLS_PORT }];
}

function baseManifests(options: ManifestOptions): ManagerManifests {
  const { namespace, version } = options;
  checkNamespaceName(namespace);
  const image = options.image ?? defaultImage(version);
  const labels = { ...selectorLabels, [MANAGED_BY_LABEL]: MANAGED_BY, 'app.kubernetes.io/version': version };
  const injector = { namespace, service: MANAGER_NAME, labels, image, ...(options.webhookTls === undefined ? {} : { tls: options.webhookTls }) };
  const meta = { name: MANAGER_NAME, namespace, labels };
  const rbacName = clusterRoleName(namespace);
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const health = (path: string) => ({ httpGet: { path, port: 'health' } });
  const binding = <K extends 'ClusterRole' | 'Role'>(kind: K, metadata: V1ObjectMeta, role: string) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: `${kind}Binding` as const,
    metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name: role },
    subjects: [{ kind: 'ServiceAccount', name: MANAGER_NAME, namespace }],
  });
  const manifests: ManagerManifests = {
    ...agentInjectorObjects(injector),
    namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels } },
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta },
    clusterRole: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: rbacName, labels },
      rules: [
        // Pod CIDRs (auto: node spec.podCIDRs, else the pods' IPs), the namespaces clients route DNS for.
        { apiGroups: [''], resources: ['nodes', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        // The kubernetes and kube-dns Services (get), and ClusterIPs covered when the probe names no range.
        { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
        // Where the cluster serves no ServiceCIDR API this grants nothing.
        { apiGroups: ['networking.k8s.io'], resources: ['servicecidrs'], verbs: ['list', 'watch'] },
        ...AGENT_RBAC_RULES,
      ],
    },
    clusterRoleBinding: binding('ClusterRole', { name: rbacName, labels }, rbacName),
    // The service-CIDR probe (a dry-run create with an invalid ClusterIP, answered with the valid range), only
    // here: a cluster-wide create would let the manager intercept traffic with externalIPs (CVE-2020-8554).
    role: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta,
      rules: [{ apiGroups: [''], resources: ['services'], verbs: ['create'] }],
    },
    roleBinding: binding('Role', meta, MANAGER_NAME),
    // Tunnels arrive through port-forwards, which enter the pod's network namespace without crossing the pod
    // network: nothing but the probes needs to reach the pod.
    networkPolicy: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta,
      spec: {
        podSelector: { matchLabels: selectorLabels },
        policyTypes: ['Ingress'],
        ingress: [{ ports: [{ protocol: 'TCP', port: HEALTH_PORT }] }],
      },
    },
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas: 1,
        selector: { matchLabels: selectorLabels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: MANAGER_NAME,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: MANAGER_UID,
              runAsGroup: MANAGER_UID,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: MANAGER_NAME,
                image,
                // 127.0.0.1, not ::1: every pod's lo has it, IPv6-only clusters included, and port-forwards
                // (containerd, CRI-O, dockershim) dial IPv4 localhost first.
                args: [MANAGER_NAME, '--listen', `127.0.0.1:${MANAGER_PORT}`, '--health-listen', `[::]:${HEALTH_PORT}`, '--pod-cidr-strategy', 'auto'],
                env: [fieldEnv('POD_IP', 'status.podIP'), fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace')],
                // `api` is what the Service's targetPort names and port-forwards dial (on the pod's loopback).
                ports: [
                  { name: 'api', containerPort: MANAGER_PORT, protocol: 'TCP' },
                  { name: 'health', containerPort: HEALTH_PORT, protocol: 'TCP' },
                ],
                // Probed often for readiness: clients wait on a replaced pod for as long as it takes to be seen ready.
                readinessProbe: { ...health('/readyz'), periodSeconds: 2 },
                livenessProbe: { ...health('/healthz'), periodSeconds: 10 },
                resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
                securityContext: {
                  runAsNonRoot: true,
                  runAsUser: MANAGER_UID,
                  runAsGroup: MANAGER_UID,
                  readOnlyRootFilesystem: true,
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  seccompProfile: { type: 'RuntimeDefault' },
                },
              },
            ],
          },
        },
      },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta,
      spec: {
        type: 'ClusterIP',
        selector: selectorLabels,
        ports: [{ name: 'api', port: MANAGER_PORT, targetPort: 'api', protocol: 'TCP' }],
      },
    },
  };
  const template = manifests.deployment.spec!.template;
  addAgentInjector({ template, container: template.spec!.containers[0]!, service: manifests.service, networkPolicy: manifests.networkPolicy }, injector);
  return manifests;
}

/**
 * In the order they are created: the namespace first, what depends on the ServiceAccount after it, the
 * NetworkPolicy before the Deployment so that no pod of it is ever reachable without it, the Secret before the
 * Deployment that mounts it, and the webhook last, once what serves it exists.
 */
export function manifestList(manifests: ManagerManifests): KubernetesObject[] {
  const { namespace, serviceAccount, clusterRole, clusterRoleBinding, role, roleBinding, networkPolicy, webhookSecret, deployment, service, webhookConfiguration } = manifests;
  return [namespace, serviceAccount, clusterRole, clusterRoleBinding, role, roleBinding, networkPolicy, webhookSecret, deployment, service, webhookConfiguration];
}

/** Multi-document YAML, as `kubectl apply -f` takes it. */
export function manifestsYaml(objects: readonly KubernetesObject[]): string {
  return objects.map((object) => `---\n${dumpYaml(object)}`).join('');
}

/** A v1 List, as `kubectl get -o json` prints several objects. */
export function manifestsJson(objects: readonly KubernetesObject[]): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
}
