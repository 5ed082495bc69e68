// The sandbox's workloads as Kubernetes objects, applied through the API by `sandbox up`: namespaces, the
// cluster DNS's ServiceAccount and read rights, the ConfigMaps and Secrets the workloads' environment reads, one
// Deployment per workload and its Service with fixed ClusterIPs (dual-stack), so that tests and the demo can name them.

import { clusterDnsRules } from './cluster-dns/rbac.js';
import type { SandboxConfig, SandboxDataObject, SandboxDeployment, SandboxService } from './sandbox-config.js';

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Where an object of this kind is created (POST). */
export function collectionPath(object: ManifestObject): string {
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const plural = `${object.kind.toLowerCase()}s`.replace(/ys$/, 'ies');
  return object.metadata.namespace === undefined ? `${base}/${plural}` : `${base}/namespaces/${object.metadata.namespace}/${plural}`;
}

const MANAGED = { 'app.kubernetes.io/part-of': 'kubetun-sandbox' };

function deployment(d: SandboxDeployment): ManifestObject {
  const labels = { app: d.name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: d.name, namespace: d.namespace, labels: { ...labels, ...MANAGED } },
    spec: {
      replicas: d.replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          ...(d.serviceAccount === undefined ? {} : { serviceAccountName: d.serviceAccount }),
          dnsPolicy: d.dnsPolicy,
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: d.name,
              image: d.image,
              args: [...d.args],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                ...(d.env ?? []),
              ],
              ...(d.envFrom === undefined ? {} : { envFrom: [...d.envFrom] }),
              ports: [{ ...(d.portName === undefined ? {} : { name: d.portName }), containerPort: d.readinessPort }],
              readinessProbe: { tcpSocket: { port: d.readinessPort }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

function dataObject(o: SandboxDataObject): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: o.kind,
    metadata: { name: o.name, namespace: o.namespace, labels: { ...MANAGED } },
    ...(o.kind === 'Secret' ? { type: 'Opaque', stringData: { ...o.data } } : { data: { ...o.data } }),
  };
}

function service(s: SandboxService): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace, labels: { ...MANAGED } },
    spec: {
      selector: { app: s.deployment },
      ipFamilyPolicy: 'RequireDualStack',
      ipFamilies: ['IPv4', 'IPv6'],
      clusterIP: s.clusterIPs.ipv4,
      clusterIPs: [s.clusterIPs.ipv4, s.clusterIPs.ipv6],
      ports: s.ports.map((p) => ({ ...(p.name === undefined ? {} : { name: p.name }), port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
    },
  };
}

/** Every object, in an order the API accepts (namespaces and accounts before what uses them). */
export function sandboxManifests(config: SandboxConfig): ManifestObject[] {
  const namespaces = [...new Set(config.deployments.map((d) => d.namespace))].filter((n) => n !== 'default' && n !== 'kube-system');
  const dns = config.deployments.find((d) => d.serviceAccount !== undefined);
  const accounts: ManifestObject[] =
    dns?.serviceAccount === undefined
      ? []
      : [
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: dns.serviceAccount, namespace: dns.namespace, labels: MANAGED } },
          { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'kubetun-sandbox-cluster-dns', labels: MANAGED }, rules: clusterDnsRules },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: 'kubetun-sandbox-cluster-dns', labels: MANAGED },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kubetun-sandbox-cluster-dns' },
            subjects: [{ kind: 'ServiceAccount', name: dns.serviceAccount, namespace: dns.namespace }],
          },
        ];
  return [
    ...namespaces.map((name): ManifestObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: MANAGED } })),
    ...accounts,
    ...config.services.map(service),
    ...config.dataObjects.map(dataObject),
    ...config.deployments.map(deployment),
  ];
}
