// A container's environment from ConfigMaps, Secrets and its resources, as the kubelet builds it: envFrom then
// env, $(VAR) expansion in order, optional sources, the kubelet's errors for missing ones, and the reads through
// the API (a test double for the API server: the real one runs in the sandbox e2e test).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeApiError } from '../../../src/k8s/resilient-informer.js';
import { ContainerConfigError, fetchEnvSources, referencedSources, type EnvSources } from '../../../src/sandbox/kubelet/env-sources.js';
import type { KubeApi } from '../../../src/sandbox/kubelet/kube-api.js';
import { containerEnvironment, expandCommand, type EnvContext } from '../../../src/sandbox/kubelet/pod-env.js';
import { parseQuantity, resourceFieldValue } from '../../../src/sandbox/kubelet/resource-env.js';
import type { Container, Pod } from '../../../src/sandbox/kubelet/types.js';

const sources: EnvSources = {
  configMaps: new Map<string, Record<string, string> | null>([
    ['echo-config', { color: 'blue', size: 'large', 'bad key': 'x', '1st': 'y' }],
    ['other', { color: 'green' }],
    ['gone', null],
  ]),
  secrets: new Map<string, Record<string, string> | null>([
    ['echo-secret', { token: 's3cret-token' }],
    ['missing', null],
  ]),
};

const pod = (containers: Container[]): Pod => ({ metadata: { name: 'echo-1', namespace: 'default', uid: 'u1' }, spec: { containers } });

function envOf(container: Container, extra: Partial<EnvContext> = {}): Record<string, string> {
  return containerEnvironment(container, { pod: pod([container]), podIPs: ['10.244.0.5'], hostIP: '198.18.0.1', sources, ...extra });
}

test('envFrom: each source in order with its prefix (later wins); keys that are not variable names are skipped and reported', () => {
  const reported: string[] = [];
  const env = envOf(
    {
      name: 'app',
      envFrom: [{ configMapRef: { name: 'echo-config' }, prefix: 'CFG_' }, { configMapRef: { name: 'echo-config' } }, { configMapRef: { name: 'other' } }, { secretRef: { name: 'echo-secret' } }],
    },
    { onInvalidNames: (m) => reported.push(m) },
  );
  assert.equal(env.CFG_color, 'blue');
  assert.equal(env.CFG_size, 'large');
  assert.equal(env.CFG_1st, 'y', 'with a prefix, "1st" becomes a valid name');
  assert.equal(env.color, 'green');
  assert.equal(env.token, 's3cret-token');
  assert.equal(env['1st'], undefined);
  assert.equal(env['bad key'], undefined);
  assert.deepEqual(reported, [
    'Keys [CFG_bad key] from the EnvFrom configmap default/echo-config were skipped since they are considered invalid environment variable names.',
    'Keys [1st, bad key] from the EnvFrom configmap default/echo-config were skipped since they are considered invalid environment variable names.',
  ]);
});

test('env: configMapKeyRef and secretKeyRef values, optional ones left out when missing, env overriding envFrom, $(VAR) across all in order', () => {
  const env = envOf({
    name: 'app',
    envFrom: [{ configMapRef: { name: 'echo-config' }, prefix: 'CFG_' }, { configMapRef: { name: 'gone', optional: true } }],
    env: [
      { name: 'ECHO_COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
      { name: 'ECHO_TOKEN', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } },
      { name: 'NOPE', valueFrom: { secretKeyRef: { name: 'missing', key: 'token', optional: true } } },
      { name: 'NOKEY', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'nokey', optional: true } } },
      { name: 'CFG_size', value: 'small' },
      { name: 'SUMMARY', value: '$(ECHO_COLOR)/$(CFG_size)/$(CFG_color)/$(LATER)' },
      { name: 'LATER', value: 'later' },
      { name: 'RAW', valueFrom: { configMapKeyRef: { name: 'other', key: 'color' } } },
    ],
  });
  assert.equal(env.ECHO_COLOR, 'blue');
  assert.equal(env.ECHO_TOKEN, 's3cret-token');
  assert.ok(!('NOPE' in env) && !('NOKEY' in env));
  assert.equal(env.CFG_size, 'small');
  assert.equal(env.SUMMARY, 'blue/small/blue/$(LATER)', 'only what is defined before a value expands into it');
});

test('values from ConfigMaps and Secrets are taken as they are, never expanded', () => {
  const literal: EnvSources = { configMaps: new Map([['c', { v: '$(HOSTNAME)' }]]), secrets: new Map() };
  const env = envOf({ name: 'app', envFrom: [{ configMapRef: { name: 'c' } }], env: [{ name: 'W', valueFrom: { configMapKeyRef: { name: 'c', key: 'v' } } }] }, { sources: literal });
  assert.equal(env.v, '$(HOSTNAME)');
  assert.equal(env.W, '$(HOSTNAME)');
});

test('a missing required ConfigMap, Secret or key fails as the kubelet words it (CreateContainerConfigError)', () => {
  const fails = (container: Container, message: string): void => {
    assert.throws(() => envOf(container), (error: unknown) => error instanceof ContainerConfigError && error.message === message);
  };
  fails({ name: 'a', envFrom: [{ configMapRef: { name: 'gone' } }] }, 'configmap "gone" not found');
  fails({ name: 'a', envFrom: [{ secretRef: { name: 'missing' } }] }, 'secret "missing" not found');
  fails({ name: 'a', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'unread', key: 'k' } } }] }, 'configmap "unread" not found');
  fails({ name: 'a', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'nokey' } } }] }, "couldn't find key nokey in ConfigMap default/echo-config");
  fails({ name: 'a', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'nokey' } } }] }, "couldn't find key nokey in Secret default/echo-secret");
});

test('quantities: decimal and binary suffixes, exponents, plain numbers; anything else is not one', () => {
  assert.equal(parseQuantity('500m'), 0.5);
  assert.equal(parseQuantity('2'), 2);
  assert.equal(parseQuantity('1.5Gi'), 1.5 * 2 ** 30);
  assert.equal(parseQuantity('128Mi'), 128 * 2 ** 20);
  assert.equal(parseQuantity('1k'), 1000);
  assert.equal(parseQuantity('2e3'), 2000);
  assert.equal(parseQuantity('1E'), 1e18);
  assert.equal(parseQuantity(4), 4);
  for (const bad of ['', 'abc', '1 Gi', '1gi', '--1', '1.2.3']) assert.equal(parseQuantity(bad), null, bad);
});

test('resourceFieldRef: limits and requests of cpu and memory with a divisor, rounded up; no limit is the node\'s capacity; another container by name', () => {
  const app: Container = { name: 'app', resources: { limits: { cpu: '500m', memory: '128Mi' }, requests: { cpu: '250m' } } };
  const bare: Container = { name: 'bare' };
  const both = [app, bare];
  assert.equal(resourceFieldValue({ resource: 'limits.cpu' }, app, both), '1');
  assert.equal(resourceFieldValue({ resource: 'limits.cpu', divisor: '1m' }, app, both), '500');
  assert.equal(resourceFieldValue({ resource: 'requests.cpu', divisor: '1m' }, app, both), '250');
  assert.equal(resourceFieldValue({ resource: 'limits.memory', divisor: '1Mi' }, app, both), '128');
  assert.equal(resourceFieldValue({ resource: 'limits.memory' }, app, both), String(128 * 2 ** 20));
  assert.equal(resourceFieldValue({ resource: 'requests.memory', divisor: '1Mi' }, app, both), '128', 'a missing request is the limit');
  assert.equal(resourceFieldValue({ resource: 'limits.memory', divisor: '1Gi' }, bare, both), '8', "the node's 8Gi");
  assert.equal(resourceFieldValue({ resource: 'limits.cpu' }, bare, both), '2');
  assert.equal(resourceFieldValue({ resource: 'requests.cpu' }, bare, both), '0');
  assert.equal(resourceFieldValue({ resource: 'limits.cpu', divisor: '1m', containerName: 'app' }, bare, both), '500');
  assert.equal(resourceFieldValue({ resource: 'limits.cpu', divisor: '300m' }, app, both), '2', '500/300 rounded up');
  assert.throws(() => resourceFieldValue({ resource: 'limits.gpu' }, app, both), /not supported: use one of limits\.cpu/);
  assert.throws(() => resourceFieldValue({ resource: 'limits.cpu', containerName: 'nope' }, app, both), /container "nope", which the pod does not have/);
  assert.throws(() => resourceFieldValue({ resource: 'limits.cpu', divisor: '0' }, app, both), /divisor "0" is not a positive quantity/);
  const env = envOf({ name: 'app', resources: { limits: { memory: '64Mi' } }, env: [{ name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } }] });
  assert.equal(env.MEM, '64');
});

test('command and args: $(VAR) expanded from the final environment, $$ escapes', () => {
  const expanded = expandCommand({ name: 'a', command: ['run', '$(COLOR)'], args: ['--x=$(COLOR)', '$$(COLOR)', '$(UNSET)'] }, { COLOR: 'blue' });
  assert.deepEqual(expanded.command, ['run', 'blue']);
  assert.deepEqual(expanded.args, ['--x=blue', '$(COLOR)', '$(UNSET)']);
  assert.equal(expandCommand({ name: 'a' }, { COLOR: 'blue' }).args, undefined);
});

/** A test double for the API server: answers GETs of the objects it has, 404 for others, and records the paths. */
function fakeApi(objects: Record<string, unknown>, paths: string[] = []): KubeApi {
  return {
    request<T>(method: string, path: string): Promise<T> {
      paths.push(`${method} ${path}`);
      if (path in objects) return Promise.resolve(objects[path] as T);
      return Promise.reject(new KubeApiError(`GET ${path}: 404 not found`, 404));
    },
  };
}

test('fetchEnvSources (test double for the API server): each named ConfigMap and Secret read once, Secrets decoded, a missing one null', async () => {
  const container: Container = {
    name: 'app',
    envFrom: [{ configMapRef: { name: 'echo-config' } }, { secretRef: { name: 'absent' } }],
    env: [
      { name: 'A', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
      { name: 'B', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } },
    ],
  };
  assert.deepEqual(referencedSources(container), { configMaps: ['echo-config'], secrets: ['absent', 'echo-secret'] });
  const paths: string[] = [];
  const api = fakeApi(
    {
      '/api/v1/namespaces/default/configmaps/echo-config': { data: { color: 'blue' } },
      '/api/v1/namespaces/default/secrets/echo-secret': { data: { token: Buffer.from('s3cret-token').toString('base64') } },
    },
    paths,
  );
  const read = await fetchEnvSources(api, 'default', container);
  assert.deepEqual(read.configMaps.get('echo-config'), { color: 'blue' });
  assert.deepEqual(read.secrets.get('echo-secret'), { token: 's3cret-token' });
  assert.equal(read.secrets.get('absent'), null);
  assert.equal(paths.length, 3);
});

test('fetchEnvSources (test double for the API server): a name that is not an object name is refused before any request; other API errors say what failed', async () => {
  const paths: string[] = [];
  await assert.rejects(fetchEnvSources(fakeApi({}, paths), 'default', { envFrom: [{ configMapRef: { name: '../../secrets/x' } }] }), /"\.\.\/\.\.\/secrets\/x" is not a configmap name/);
  assert.deepEqual(paths, []);
  const failing: KubeApi = { request: () => Promise.reject(new KubeApiError('GET …: 403 forbidden', 403)) };
  await assert.rejects(fetchEnvSources(failing, 'default', { envFrom: [{ secretRef: { name: 's' } }] }), (e: unknown) => e instanceof ContainerConfigError && /cannot read secret "s": .*403/.test((e as Error).message));
});
