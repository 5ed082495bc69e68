// The traffic manager's Kubernetes config and namespace: a kubeconfig file (--kubeconfig or KUBECONFIG) when one is
// given, else the pod's service account (in-cluster).
import { readFileSync } from 'node:fs';
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../k8s/kube-client.js';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Throws KubeConfigError (src/k8s/kube-client.ts) for a missing or unusable kubeconfig. */
export function managerKubeConfig(kube: { kubeconfig?: string; inCluster: boolean }): KubeConfig {
  if (kube.kubeconfig !== undefined) {
    // A KUBECONFIG-style list is merged like kubectl does; a single file must exist.
    return kube.kubeconfig.includes(delimiter)
      ? loadKubeConfig({ env: { ...process.env, KUBECONFIG: kube.kubeconfig } })
      : loadKubeConfig({ kubeconfig: kube.kubeconfig });
  }
  const config = new KubeConfig();
  config.loadFromCluster();
  return config;
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
