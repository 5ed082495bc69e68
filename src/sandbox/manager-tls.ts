// The sandbox's direct way to the traffic manager (`kubetun connect --manager-url`): a TLS certificate signed by the
// sandbox's CA in a Secret (what `kubetun install --tls-secret` mounts), a NodePort Service on the manager's TLS
// port, and the CA where clients find it (`--manager-ca`). Clients are then authenticated like any direct client:
// a kubeconfig user's token allowed to port-forward to the manager.

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANAGED_BY, MANAGED_BY_LABEL, MANAGER_NAME, MANAGER_TLS_PORT, selectorLabels } from '../k8s/manager-manifests.js';
import { requestApiInNetns, type ApiCredentials } from './control-plane/api-request.js';
import { makeSigned } from './control-plane/pki.js';
import type { SandboxConfig } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';

const REQUEST_TIMEOUT_MS = 20_000;

async function certificate(config: SandboxConfig): Promise<{ certFile: string; keyFile: string }> {
  const dir = join(config.stateDir, 'manager-tls');
  const files = { certFile: join(dir, 'manager.crt'), keyFile: join(dir, 'manager.key') };
  if (existsSync(files.certFile) && existsSync(files.keyFile)) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { certFile: join(config.controlPlane.stateDir, 'pki', 'ca.crt'), keyFile: join(config.controlPlane.stateDir, 'pki', 'ca.key') };
  const { namespace, service } = config.manager;
  const names = [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.${config.clusterDomain}`];
  const altNames = [...names.map((n) => `DNS:${n}`), `IP:${config.link.node.ipv4}`, `IP:${config.link.node.ipv6}`];
  return makeSigned(dir, 'manager', ca, { commonName: MANAGER_NAME, organizations: [] }, 'server', altNames);
}

/**
 * Creates what is missing: the manager's namespace (labelled as kubetun's, so that install adopts it and uninstall
 * removes it), the TLS Secret and the NodePort Service; writes the CA for clients. Returns what it created.
 */
export async function ensureManagerTls(config: SandboxConfig, admin: ApiCredentials): Promise<string[]> {
  const { certFile, keyFile } = await certificate(config);
  copyFileSync(join(config.controlPlane.stateDir, 'pki', 'ca.crt'), config.manager.caFile);
  chmodSync(config.manager.caFile, 0o644);
  const { namespace, tlsSecret, nodePort } = config.manager;
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY };
  const base64 = (file: string): string => readFileSync(file).toString('base64');
  const objects = [
    { path: '/api/v1/namespaces', name: namespace, what: `namespace ${namespace}`, body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels } } },
    {
      path: `/api/v1/namespaces/${namespace}/secrets`,
      name: tlsSecret,
      what: `secret ${namespace}/${tlsSecret}`,
      body: { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: tlsSecret, namespace }, data: { 'tls.crt': base64(certFile), 'tls.key': base64(keyFile) } },
    },
    {
      path: `/api/v1/namespaces/${namespace}/services`,
      name: `${MANAGER_NAME}-direct`,
      what: `service ${namespace}/${MANAGER_NAME}-direct (NodePort ${nodePort})`,
      body: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `${MANAGER_NAME}-direct`, namespace },
        spec: { type: 'NodePort', selector: selectorLabels, ports: [{ name: 'api-tls', port: MANAGER_TLS_PORT, targetPort: MANAGER_TLS_PORT, nodePort, protocol: 'TCP' }] },
      },
    },
  ];
  const created: string[] = [];
  const request = async (method: 'GET' | 'POST', path: string, expected: number[], body?: unknown): Promise<number> => {
    const [answer] = await requestApiInNetns(config.namespaces.node, { credentials: admin, requests: [{ method, path, body }], timeoutMs: REQUEST_TIMEOUT_MS });
    if (answer !== undefined && expected.includes(answer.status)) return answer.status;
    throw new SandboxError('COMMAND_FAILED', `the API server did not take ${method} ${path} (HTTP ${answer?.status ?? 0}): ${answer?.body ?? ''}`);
  };
  // Looked up first (creating a Service that exists answers 422, not 409); one at a time, the namespace first.
  for (const object of objects) {
    if ((await request('GET', `${object.path}/${object.name}`, [200, 404])) === 200) continue;
    await request('POST', object.path, [201], object.body);
    created.push(object.what);
  }
  return created;
}
