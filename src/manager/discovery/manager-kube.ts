// The traffic manager's Kubernetes access and namespace: a kubeconfig file (--kubeconfig or KUBECONFIG) when one is
// given, else the pod's service account (in-cluster). Only the kubeconfig case loads @kubernetes/client-node: in its
// pod the manager stays ~80 MiB smaller without it.
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { inClusterAccess, SERVICE_ACCOUNT_DIR } from '../../k8s/in-cluster-access.js';
import type { KubeAccess } from '../../k8s/resilient-informer.js';

const SERVICE_ACCOUNT_NAMESPACE = join(SERVICE_ACCOUNT_DIR, 'namespace');

/** Throws KubeConfigError (src/k8s/kube-config-error.ts) for a missing or unusable kubeconfig or service account. */
export async function managerKubeAccess(kube: { kubeconfig?: string; inCluster: boolean }): Promise<KubeAccess> {
  if (kube.kubeconfig === undefined) return inClusterAccess();
  const { loadKubeConfig } = await import('../../k8s/kube-client.js');
  // A KUBECONFIG-style list is merged like kubectl does; a single file must exist.
  return kube.kubeconfig.includes(delimiter)
    ? loadKubeConfig({ env: { ...process.env, KUBECONFIG: kube.kubeconfig } })
    : loadKubeConfig({ kubeconfig: kube.kubeconfig });
}

/** POD_NAMESPACE (set from the downward API), else the service account's namespace, else "default". */
export function managerNamespace(env: Record<string, string | undefined>, inCluster: boolean): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (inCluster) {
    try {
      return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default';
    } catch {
      // No service account mounted: fall through.
    }
  }
  return 'default';
}
