// Kubernetes users for the sandbox's direct way to the traffic manager: a ServiceAccount in the manager's
// namespace, allowed to port-forward to the manager's pods or not, and a kubeconfig with its token (TokenRequest
// API) for `kubetun connect --manager-url --kubeconfig`. The admin's kubeconfig holds a client certificate, which
// cannot be passed on to a manager; these users show what a real cluster's token users do.

import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { requestApiInNetns, type ApiCredentials, type ApiRequest } from './control-plane/api-request.js';
import { readControlPlane } from './control-plane/control-plane.js';
import type { SandboxConfig } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';

const RBAC = '/apis/rbac.authorization.k8s.io/v1';
const TOKEN_SECONDS = 3600;

function admin(config: SandboxConfig): ApiCredentials {
  const plane = readControlPlane(config.controlPlane.stateDir);
  if (plane === null) throw new SandboxError('NOT_UP', `sandbox ${config.name} has no control plane running: run kubetun sandbox up --name ${config.name}`);
  return plane.admin;
}

async function post(config: SandboxConfig, request: ApiRequest, accept: number[] = [201, 409]): Promise<string> {
  const [answer] = await requestApiInNetns(config.namespaces.node, { credentials: admin(config), requests: [request], timeoutMs: 20_000 });
  if (answer === undefined || !accept.includes(answer.status)) {
    throw new SandboxError('COMMAND_FAILED', `the API server refused ${request.method} ${request.path} (HTTP ${answer?.status ?? 0}): ${answer?.body ?? ''}`);
  }
  return answer.body;
}

/** The bindings that let `subject` (a ServiceAccount of the manager's namespace) create pods/portforward there. */
async function allowPortForward(config: SandboxConfig, name: string): Promise<void> {
  const { namespace } = config.manager;
  const rbac = { apiVersion: 'rbac.authorization.k8s.io/v1' };
  await post(config, {
    method: 'POST',
    path: `${RBAC}/namespaces/${namespace}/roles`,
    body: { ...rbac, kind: 'Role', metadata: { name: 'kubetun-port-forward' }, rules: [{ apiGroups: [''], resources: ['pods/portforward'], verbs: ['create'] }] },
  });
  await post(config, {
    method: 'POST',
    path: `${RBAC}/namespaces/${namespace}/rolebindings`,
    body: {
      ...rbac,
      kind: 'RoleBinding',
      metadata: { name: `kubetun-port-forward-${name}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kubetun-port-forward' },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  });
}

/**
 * Makes (or reuses) ServiceAccount `name` in the manager's namespace, bound to pods/portforward there when
 * `portForward`, and writes a kubeconfig with a fresh token of it; returns that file and the token.
 */
export async function sandboxManagerUser(config: SandboxConfig, name: string, portForward: boolean): Promise<{ kubeconfig: string; token: string }> {
  const { namespace } = config.manager;
  await post(config, { method: 'POST', path: `/api/v1/namespaces/${namespace}/serviceaccounts`, body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } } });
  if (portForward) await allowPortForward(config, name);
  const answer = await post(
    config,
    {
      method: 'POST',
      path: `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: TOKEN_SECONDS } },
    },
    [201],
  );
  const token = (JSON.parse(answer) as { status: { token: string } }).status.token;
  const dir = join(config.stateDir, 'users');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kubeconfig = join(dir, `${name}.kubeconfig`);
  const caFile = admin(config).caFile;
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: sandbox, cluster: {server: "${config.controlPlane.server}", certificate-authority: "${caFile}"}}]`,
      `users: [{name: ${name}, user: {token: "${token}"}}]`,
      `contexts: [{name: ${name}, context: {cluster: sandbox, user: ${name}, namespace: default}}]`,
      `current-context: ${name}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { kubeconfig, token };
}
