// `kubetun install` / `uninstall` as processes against a real control plane (no kubelet: the manager's pod
// is never scheduled, so the wait's timeout message is what is checked). Everything runs inside the test's
// own network namespace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import { covers } from '../../src/k8s/installer.js';
import { managerManifests, manifestList } from '../../src/k8s/manager-manifests.js';
import { createWebhookTls, webhookDnsNames, webhookTlsFromSecretData, type WebhookTls } from '../../src/k8s/webhook-tls.js';
import { SERVICE_ACCOUNT_ISSUER } from '../../src/sandbox/control-plane/command-lines.js';
import { kubetunVersion } from '../../src/version.js';
import { startTestControlPlane, TEST_API_ADDRESS, type TestControlPlane } from '../helpers/control-plane.js';
import type { ExecResult } from '../helpers/netns.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CLI_TIMEOUT_MS = 60_000;
const TOKEN_WAIT_MS = 30_000;

function collectionPath(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace;
  const kind = object.kind!.toLowerCase();
  const plural = kind.endsWith('y') ? `${kind.slice(0, -1)}ies` : `${kind}s`;
  const base = object.apiVersion === 'v1' ? '/api/v1' : `/apis/${object.apiVersion}`;
  return namespace === undefined ? `${base}/${plural}` : `${base}/namespaces/${namespace}/${plural}`;
}

const objectPath = (object: KubernetesObject): string => `${collectionPath(object)}/${object.metadata!.name}`;

function tokenKubeconfig(server: string, caPem: string, user: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: test, cluster: {server: "${server}", certificate-authority-data: ${Buffer.from(caPem).toString('base64')}}}]`,
    `users: [{name: ${user}, user: {token: "${token}"}}]`,
    `contexts: [{name: test, context: {cluster: test, user: ${user}}}]`,
    'current-context: test',
    '',
  ].join('\n');
}

async function serviceAccountToken(cp: TestControlPlane, namespace: string, name: string): Promise<string> {
  const [created] = await cp.api([{ method: 'POST', path: `/api/v1/namespaces/${namespace}/serviceaccounts`, body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } } }]);
  assert.equal(created?.status, 201, created?.body);
  // Kubernetes 1.20's tokens controller adds a token Secret to each ServiceAccount shortly after it is made.
  const deadline = Date.now() + TOKEN_WAIT_MS;
  while (Date.now() < deadline) {
    const [account] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/${namespace}/serviceaccounts/${name}` }]);
    const secret = (JSON.parse(account!.body) as { secrets?: { name: string }[] }).secrets?.[0]?.name;
    if (secret !== undefined) {
      const [answer] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/${namespace}/secrets/${secret}` }]);
      const token = (JSON.parse(answer!.body) as { data?: { token?: string } }).data?.token;
      if (token !== undefined) return Buffer.from(token, 'base64').toString('utf8');
    }
    await sleep(500);
  }
  throw new Error(`no token Secret appeared for ServiceAccount ${namespace}/${name} within ${TOKEN_WAIT_MS} ms`);
}

/**
 * A bound service-account token for an existing account, signed with the control plane's own key as its token
 * controller would, valid from `fromS` to `untilS` (Unix seconds): how a token that expired is made without waiting.
 */
async function signedServiceAccountToken(cp: TestControlPlane, namespace: string, name: string, fromS: number, untilS: number): Promise<string> {
  const [account] = await cp.api([{ method: 'GET', path: `/api/v1/namespaces/${namespace}/serviceaccounts/${name}` }]);
  assert.equal(account?.status, 200, account?.body);
  const uid = (JSON.parse(account.body) as { metadata: { uid: string } }).metadata.uid;
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = {
    iss: SERVICE_ACCOUNT_ISSUER,
    aud: [SERVICE_ACCOUNT_ISSUER],
    sub: `system:serviceaccount:${namespace}:${name}`,
    iat: fromS,
    nbf: fromS,
    exp: untilS,
    'kubernetes.io': { namespace, serviceaccount: { name, uid } },
  };
  const unsigned = `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}`;
  const key = createPrivateKey(readFileSync(join(cp.stateDir, 'pki', 'sa.key')));
  return `${unsigned}.${sign('sha256', Buffer.from(unsigned), key).toString('base64url')}`;
}

test('install and uninstall against a real API server: schema, idempotence, upgrade, wait, RBAC and credential errors', { timeout: 420_000 }, async (t) => {
  const cp = await startTestControlPlane(t, 'inst');
  if (cp === null) return;
  try {
    const admin = cp.plane.kubeconfig;
    const kubetun = (args: string[], env: string[] = []): Promise<ExecResult> =>
      cp.ns.exec('env', [...env, process.execPath, MAIN, ...args], { timeoutMs: CLI_TIMEOUT_MS });
    const get = async (object: KubernetesObject): Promise<{ status: number; body: Record<string, unknown> }> => {
      const [answer] = await cp.api([{ method: 'GET', path: objectPath(object) }]);
      return { status: answer!.status, body: JSON.parse(answer!.body) as Record<string, unknown> };
    };
    const manifests = managerManifests({ namespace: 'kubetun', version: kubetunVersion() });
    const objects = manifestList(manifests);
    // What install applied: the manifests with the webhook TLS it made, as its Secret holds it.
    const installedManifests = async () => {
      const secret = (await get(manifests.webhookSecret)).body as { data?: Record<string, string> };
      return managerManifests({ namespace: 'kubetun', version: kubetunVersion(), webhookTls: webhookTlsFromSecretData(secret.data) as WebhookTls });
    };

    await t.test('the manifests pass the API server schema (server-side dry run) and keep every field', async () => {
      // Namespaced objects go to `default` (the dry-run namespace does not exist); the dry-run answer is the
      // object as stored, so a misspelt field (dropped by a 1.20 server) fails `covers`.
      const webhookTls = createWebhookTls(webhookDnsNames('traffic-manager', 'default'));
      const inDefault = manifestList(managerManifests({ namespace: 'default', version: kubetunVersion(), webhookTls }));
      const probes = [objects[0]!, ...inDefault.slice(1)];
      const answers = await cp.api(probes.map((object) => ({ method: 'POST' as const, path: `${collectionPath(object)}?dryRun=All`, body: object })));
      answers.forEach((answer, i) => {
        assert.equal(answer.status, 201, `${probes[i]!.kind}: ${answer.body}`);
        assert.ok(covers(JSON.parse(answer.body), JSON.parse(JSON.stringify(probes[i]))), `${probes[i]!.kind} lost fields: ${answer.body}`);
      });
      // The check can fail: the server drops a misspelt field, and `covers` notices.
      const deployment = inDefault.find((o) => o.kind === 'Deployment')!;
      const typo = JSON.parse(JSON.stringify(deployment)) as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
      typo.spec.template.spec.containers[0]!.readinesProbe = { tcpSocket: { port: 8081 } };
      const [dropped] = await cp.api([{ method: 'POST', path: `${collectionPath(deployment)}?dryRun=All`, body: typo }]);
      assert.equal(dropped?.status, 201, dropped?.body);
      assert.ok(!covers(JSON.parse(dropped!.body), typo), 'a misspelt field went unnoticed');
      const [gone] = await cp.api([{ method: 'GET', path: objectPath(objects[0]!) }]);
      assert.equal(gone?.status, 404, 'a dry run must not create anything');
    });

    await t.test('install (KUBECONFIG) creates every object, then says which pod keeps it from being available', async () => {
      const run = await kubetun(['install', '--timeout', '8'], [`KUBECONFIG=${admin}`]);
      for (const line of `${run.stdout}${run.stderr}`.trimEnd().split('\n')) t.diagnostic(line);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      for (const object of objects) assert.match(run.stdout, new RegExp(`^${object.kind!.toLowerCase()}/${object.metadata!.name} created$`, 'm'));
      assert.match(
        run.stderr,
        /^kubetun install: the traffic manager is not available after 8 s: pod traffic-manager-[a-z0-9]+-[a-z0-9]+: it is not scheduled: .*; see "kubectl -n kubetun describe pod traffic-manager-[a-z0-9-]+"\. Its objects are installed/m,
      );
      for (const object of manifestList(await installedManifests())) {
        const { status, body } = await get(object);
        assert.equal(status, 200, `${object.kind} is missing`);
        assert.ok(covers(body, JSON.parse(JSON.stringify(object))), `${object.kind} differs from the manifest: ${JSON.stringify(body)}`);
      }
      const service = (await get(manifests.service)).body as { spec: { clusterIP: string } };
      assert.match(service.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
    });

    await t.test('re-install changes nothing; a new --image updates only the Deployment', async () => {
      const before = (await get(manifests.deployment)).body as { metadata: { resourceVersion: string } };
      const again = await kubetun(['install', '--kubeconfig', admin, '--timeout', '2']);
      assert.equal(again.code, 1, again.stderr);
      assert.equal(again.stdout.match(/ unchanged$/gm)?.length, objects.length, again.stdout);
      const same = (await get(manifests.deployment)).body as { metadata: { resourceVersion: string } };
      assert.equal(same.metadata.resourceVersion, before.metadata.resourceVersion);

      const upgrade = await kubetun(['install', '--kubeconfig', admin, '--timeout', '2', '--image', 'registry.test/traffic-manager:next']);
      assert.match(upgrade.stdout, /^deployment\/traffic-manager updated$/m);
      assert.equal(upgrade.stdout.match(/ unchanged$/gm)?.length, objects.length - 1, upgrade.stdout);
      const updated = (await get(manifests.deployment)).body as { spec: { template: { spec: { containers: { image: string }[] } } } };
      assert.equal(updated.spec.template.spec.containers[0]?.image, 'registry.test/traffic-manager:next');
    });

    await t.test('uninstall deletes everything and waits for the namespace; a second one says it is not installed', async () => {
      const run = await kubetun(['uninstall', '--kubeconfig', admin, '--timeout', '45']);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      for (const object of objects) assert.match(run.stdout, new RegExp(`^${object.kind!.toLowerCase()}/${object.metadata!.name} deleted$`, 'm'));
      assert.match(run.stdout, /kubetun is uninstalled from namespace kubetun$/m);
      for (const object of objects) assert.equal((await get(object)).status, 404, `${object.kind} is still there`);
      const again = await kubetun(['uninstall', '--kubeconfig', admin]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, 'kubetun is not installed in namespace kubetun: nothing to delete\n');
    });

    await t.test('objects kubetun did not create are neither changed nor deleted', async () => {
      const [ns, foreign] = await cp.api([
        { method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shared' } } },
        { method: 'POST', path: '/api/v1/namespaces/shared/services', body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'traffic-manager' }, spec: { ports: [{ port: 80 }] } } },
      ]);
      assert.equal(ns?.status, 201, ns?.body);
      assert.equal(foreign?.status, 201, foreign?.body);
      const run = await kubetun(['install', '--kubeconfig', admin, '-n', 'shared', '--timeout', '2']);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /^namespace\/shared exists and was not created by kubetun: used as it is$/m);
      assert.match(run.stderr, /Service shared\/traffic-manager exists but kubetun did not create it \(it lacks the label app\.kubernetes\.io\/managed-by=kubetun\): delete it, or install into another --namespace/);
      const removed = await kubetun(['uninstall', '--kubeconfig', admin, '-n', 'shared']);
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(removed.stdout, /^deployment\/traffic-manager deleted$/m);
      assert.match(removed.stdout, /^service\/traffic-manager was not created by kubetun: left as it is$/m);
      assert.match(removed.stdout, /^namespace\/shared was not created by kubetun: left as it is$/m);
      const [service, namespace] = await cp.api([{ method: 'GET', path: '/api/v1/namespaces/shared/services/traffic-manager' }, { method: 'GET', path: '/api/v1/namespaces/shared' }]);
      assert.equal(service?.status, 200);
      assert.equal(namespace?.status, 200);
    });

    await t.test('a user without RBAC rights gets the permission and the user named', async () => {
      const token = await serviceAccountToken(cp, 'default', 'nobody');
      const file = join(cp.stateDir, 'nobody.kubeconfig');
      writeFileSync(file, tokenKubeconfig(cp.plane.server, readFileSync(cp.plane.admin.caFile, 'utf8'), 'nobody', token));
      const run = await kubetun(['install', '--kubeconfig', file]);
      assert.equal(run.code, 1);
      assert.equal(
        run.stderr,
        'kubetun install: cannot read Namespace kubetun: user "system:serviceaccount:default:nobody" lacks the permission to get namespaces cluster-wide (403 Forbidden); ' +
          'ask a cluster admin to grant it (RBAC), or use a --context whose user has it\n',
      );
      const uninstall = await kubetun(['uninstall', '--kubeconfig', file]);
      assert.equal(uninstall.code, 1);
      // Uninstall starts with the webhook, whose cluster-scoped permission is named with the advice.
      assert.match(
        uninstall.stderr,
        /cannot read MutatingWebhookConfiguration kubetun-agent-injector-kubetun: user "system:serviceaccount:default:nobody" lacks the permission to get mutatingwebhookconfigurations\.admissionregistration\.k8s\.io cluster-wide \(403 Forbidden\); .*\. kubetun's agent injector needs permission to get, create, update and delete mutatingwebhookconfigurations \(admissionregistration\.k8s\.io, cluster-scoped\); ask a cluster admin to grant it, or to run this command$/m,
      );
    });

    await t.test('an expired or invalid token gets the 401 advice; a wrong --context lists the contexts; a refused or silent server is named', async () => {
      const caPem = readFileSync(cp.plane.admin.caFile, 'utf8');
      const now = Math.floor(Date.now() / 1000);
      // The same token while still valid authenticates (nobody may read nothing: 403), so only its expiry makes the 401.
      const valid = join(cp.stateDir, 'valid.kubeconfig');
      writeFileSync(valid, tokenKubeconfig(cp.plane.server, caPem, 'jane', await signedServiceAccountToken(cp, 'default', 'nobody', now - 60, now + 600)));
      assert.match((await kubetun(['install', '--kubeconfig', valid])).stderr, /lacks the permission to get namespaces cluster-wide \(403 Forbidden\)/);
      const expired = join(cp.stateDir, 'expired.kubeconfig');
      writeFileSync(expired, tokenKubeconfig(cp.plane.server, caPem, 'jane', await signedServiceAccountToken(cp, 'default', 'nobody', now - 7200, now - 3600)));
      const invalid = join(cp.stateDir, 'invalid.kubeconfig');
      writeFileSync(invalid, tokenKubeconfig(cp.plane.server, caPem, 'jane', 'not-a-token'));
      for (const file of [expired, invalid]) {
        const denied = await kubetun(['install', '--kubeconfig', file]);
        assert.equal(denied.code, 1);
        assert.equal(
          denied.stderr,
          `kubetun install: cannot read Namespace kubetun: ${cp.plane.server} rejected the credentials of kubeconfig user "jane" (401 Unauthorized): ` +
            'they are expired or invalid; log in again / refresh the token, then retry\n',
        );
      }
      const context = await kubetun(['install', '--kubeconfig', admin, '--context', 'staging']);
      assert.equal(context.code, 1);
      assert.equal(context.stderr, `kubetun install: context "staging" is not in ${admin}; its contexts are kubetun-sandbox\n`);
      const closed = join(cp.stateDir, 'closed.kubeconfig');
      const server = `https://${TEST_API_ADDRESS}:6444`;
      writeFileSync(closed, tokenKubeconfig(server, caPem, 'jane', 'x'));
      const refused = await kubetun(['uninstall', '--kubeconfig', closed]);
      assert.equal(refused.code, 1);
      assert.equal(refused.stderr, `kubetun uninstall: cannot read MutatingWebhookConfiguration kubetun-agent-injector-kubetun: ${server} refused the connection: is the cluster running, and is this the right --context?\n`);

      // A server that accepts connections and never answers: --request-timeout ends the wait.
      const silent = cp.ns.spawn(process.execPath, ['-e', `require('node:net').createServer(() => {}).listen(6445, '${TEST_API_ADDRESS}', () => console.log('ready'))`]);
      await once(silent.stdout!, 'data');
      const mute = join(cp.stateDir, 'silent.kubeconfig');
      writeFileSync(mute, tokenKubeconfig(`https://${TEST_API_ADDRESS}:6445`, caPem, 'jane', 'x'));
      const started = Date.now();
      const hung = await kubetun(['install', '--kubeconfig', mute, '--request-timeout', '1.5']);
      assert.equal(hung.code, 1);
      assert.equal(
        hung.stderr,
        `kubetun install: cannot read Namespace kubetun: https://${TEST_API_ADDRESS}:6445 did not answer in time: check the network (VPN, firewall) and that this is the right --context\n`,
      );
      assert.ok(Date.now() - started < 15_000, 'the request timeout did not end the wait');
    });
  } finally {
    await cp.destroy();
  }
});

test('install --dry-run prints the manifests without a cluster; bad flags exit with 2 and say which', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig' } });
  const yaml = cli(['install', '--dry-run', '--namespace', 'tools', '--image', 'registry.test/tm:1']);
  assert.equal(yaml.status, 0, yaml.stderr);
  assert.equal(yaml.stdout.match(/^kind: /gm)?.length, 11);
  assert.match(yaml.stdout, /^kind: MutatingWebhookConfiguration$/m);
  // A complete set to apply: the CA in the caBundle, the certificate and key in the Secret (long values fold).
  assert.match(yaml.stdout, /caBundle: >-\n +[A-Za-z0-9+/=]{100,}$/m);
  assert.match(yaml.stdout, /tls\.key: >-\n +[A-Za-z0-9+/=]{100,}$/m);
  assert.match(yaml.stdout, /image: registry\.test\/tm:1$/m);
  assert.match(yaml.stdout, /^ {2}name: kubetun-traffic-manager-tools$/m);
  // What least privilege and loopback listening look like to someone reading the dry run.
  for (const shown of [/^kind: Role$/m, /^kind: RoleBinding$/m, /^kind: NetworkPolicy$/m, /- 127\.0\.0\.1:8081$/m, /runAsNonRoot: true/, /readOnlyRootFilesystem: true/, /type: RuntimeDefault/, /cpu: '?1'?$/m, /path: \/readyz/]) {
    assert.match(yaml.stdout, shown);
  }
  const json = cli(['install', '--dry-run', '-o', 'json']);
  assert.equal(json.status, 0, json.stderr);
  assert.equal((JSON.parse(json.stdout) as { items: unknown[] }).items.length, 11);

  const usage: [string[], RegExp][] = [
    [['install', '-o', 'json'], /-o\/--output only goes with --dry-run/],
    [['install', '--dry-run', '-o', 'xml'], /argument 'xml' is invalid\. Allowed choices are yaml, json/],
    [['install', '--namespace', 'Bad_Name', '--dry-run'], /--namespace "Bad_Name" is not a valid namespace name/],
    [['uninstall', '--timeout', 'soon'], /--timeout soon is not a positive number of seconds/],
    [['install', '--request-timeout', '0'], /--request-timeout 0 is not a positive number of seconds/],
  ];
  for (const [args, message] of usage) {
    const run = cli(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
  const missing = cli(['install']);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, 'kubetun install: no file of KUBECONFIG (/nonexistent/kubeconfig) exists: fix KUBECONFIG or pass --kubeconfig\n');
});
