// Kubeconfig files for the control plane's users, with the certificates embedded so that one file is all a
// client needs (it can be copied into another namespace's view of the file system).

import { readFileSync, writeFileSync } from 'node:fs';
import type { KeyPairFiles } from './pki.js';

export interface KubeconfigParts {
  /** The cluster, context and user name. */
  name: string;
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  /** The context's default namespace. */
  namespace?: string;
}

const b64 = (pem: string): string => Buffer.from(pem).toString('base64');

/** The kubeconfig text (YAML: every value is a URL, a name or base64, none needs quoting). */
export function renderKubeconfig(parts: KubeconfigParts): string {
  const { name } = parts;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${name}`,
    '  cluster:',
    `    server: ${parts.server}`,
    `    certificate-authority-data: ${b64(parts.caPem)}`,
    'users:',
    `- name: ${name}`,
    '  user:',
    `    client-certificate-data: ${b64(parts.certPem)}`,
    `    client-key-data: ${b64(parts.keyPem)}`,
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${name}`,
    ...(parts.namespace === undefined ? [] : [`    namespace: ${parts.namespace}`]),
    `current-context: ${name}`,
    '',
  ].join('\n');
}

/** Writes a kubeconfig (mode 0600: it holds a private key) for the user of `client`. */
export function writeKubeconfig(path: string, name: string, server: string, caFile: string, client: KeyPairFiles): void {
  const text = renderKubeconfig({
    name,
    server,
    caPem: readFileSync(caFile, 'utf8'),
    certPem: readFileSync(client.certFile, 'utf8'),
    keyPem: readFileSync(client.keyFile, 'utf8'),
  });
  writeFileSync(path, text, { mode: 0o600 });
}
