// The API server as a pod sees it: KUBERNETES_SERVICE_HOST/PORT and the mounted service-account token and CA.
// What the traffic manager uses in its pod, without @kubernetes/client-node (whose KubeConfig alone costs ~80 MiB
// of memory). The token is read for every request: the kubelet rotates it.

import { readFileSync } from 'node:fs';
import type * as https from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { KubeAccess } from './resilient-informer.js';
import { KubeConfigError } from './kube-config-error.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function inClusterAccess(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw new KubeConfigError('not in a pod (KUBERNETES_SERVICE_HOST/PORT are not set): pass --kubeconfig to reach the API server');
  }
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  const read = (file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new KubeConfigError(`cannot read the service account's ${file} (${(error as Error).message}): is a token mounted (automountServiceAccountToken)?`);
    }
  };
  read(tokenFile);
  const ca = read(caFile);
  const cluster = { name: 'in-cluster', server: `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`, caFile, skipTLSVerify: false };
  return {
    getCurrentCluster: () => cluster,
    applyToHTTPSOptions: async (opts: https.RequestOptions) => {
      opts.ca = ca;
      opts.headers = { ...opts.headers, Authorization: `Bearer ${read(tokenFile).toString('utf8').trim()}` };
    },
  };
}
