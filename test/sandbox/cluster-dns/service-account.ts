// Kubeconfigs for the cluster DNS's tests: one for a ServiceAccount granted exactly `rules` cluster-wide (to check
// that a program's published RBAC rules are all it needs), and one whose API server never answers.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestControlPlane } from '../../helpers/control-plane.js';

export async function serviceAccountKubeconfig(cp: TestControlPlane, name: string, rules: readonly object[], file: string): Promise<void> {
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  const created = await cp.api([
    { method: 'POST', path: '/api/v1/namespaces/kube-system/serviceaccounts', body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } } },
    { method: 'POST', path: `${rbac}/clusterroles`, body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules } },
    {
      method: 'POST',
      path: `${rbac}/clusterrolebindings`,
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: 'kube-system' }],
      },
    },
  ]);
  for (const r of created) assert.equal(r.status, 201, r.body);
  // The tokens controller adds the account's token Secret shortly after.
  let token: string | undefined;
  for (let i = 0; i < 100 && token === undefined; i++) {
    const [account] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/kube-system/serviceaccounts/${name}` }]);
    const secret = (JSON.parse(account!.body) as { secrets?: { name: string }[] }).secrets?.[0]?.name;
    if (secret !== undefined) {
      const [s] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/kube-system/secrets/${secret}` }]);
      const data = (JSON.parse(s!.body) as { data?: { token?: string } }).data?.token;
      if (data !== undefined) token = Buffer.from(data, 'base64').toString('utf8');
    }
    if (token === undefined) await sleep(200);
  }
  assert.ok(token !== undefined, `no token Secret for ServiceAccount ${name}`);
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: c, cluster: {server: "${cp.plane.server}", certificate-authority: "${cp.plane.admin.caFile}"}}]`,
      `users: [{name: ${name}, user: {token: "${token}"}}]`,
      `contexts: [{name: x, context: {cluster: c, user: ${name}}}]`,
      'current-context: x',
      '',
    ].join('\n'),
  );
}

/** Writes `dir`/kubeconfig naming port 1 of loopback: the API never answers, so no informer ever syncs. */
export function unreachableKubeconfig(dir: string): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\n' +
      'contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  return file;
}
