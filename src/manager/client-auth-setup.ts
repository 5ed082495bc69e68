// From the settings to the authenticator the manager's TLS listeners use: the shared token read from its file, or
// the reviews against the Kubernetes API for the manager's own pod.

import { readFileSync } from 'node:fs';
import type { KubeAccess } from '../k8s/resilient-informer.js';
import { kubernetesAccessReview, kubernetesAuthenticator, tokenAuthenticator, type ClientAuthenticator } from './client-auth.js';
import { ConfigError, type ClientAuthSettings } from './manager-config.js';

/** Shorter shared tokens could be guessed. */
export const MIN_TOKEN_LENGTH = 16;

/** The token is the file's first line, without surrounding blanks. */
export function readTokenFile(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${flag} ${file}: ${(error as Error).message}`);
  }
  const token = (text.split('\n')[0] ?? '').trim();
  if (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(`${flag} ${file}: the token must be one line of at least ${MIN_TOKEN_LENGTH} visible ASCII characters (e.g. openssl rand -hex 32).`);
  }
  return token;
}

/** Throws ConfigError when the mode cannot work here. */
export function clientAuthenticator(
  settings: ClientAuthSettings | undefined,
  kube: KubeAccess | undefined,
  pod: { name: string | undefined; namespace: string },
): ClientAuthenticator | undefined {
  if (settings === undefined) return undefined;
  if (settings.mode === 'token') return tokenAuthenticator(readTokenFile(settings.tokenFile, '--client-token-file'));
  if (kube === undefined) throw new ConfigError('Kubernetes client authentication needs the Kubernetes API: run in a pod or give --kubeconfig.');
  if (pod.name === undefined || pod.name === '') {
    throw new ConfigError("Kubernetes client authentication checks pods/portforward on the manager's own pod: set POD_NAME (the downward API's metadata.name).");
  }
  return kubernetesAuthenticator(kubernetesAccessReview(kube, { name: pod.name, namespace: pod.namespace }));
}
