// The traffic manager as `kubetun install` deploys it into the sandbox cluster, seen from the cluster's side
// (issue 8, items 2 and 6): tunnels only through its pod's loopback (a port-forward), so another pod reaches
// neither its pod IP nor its Service on the tunnel port, while the health port answers; it runs as a non-root
// user; RBAC lets it create Services only in its own namespace (SubjectAccessReview, as `kubectl auth can-i`
// asks); and it discovers the namespaces and the nodes' addresses. One sandbox for all, under the e2e lock.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { podsOf, readCluster, sandboxApi, sandboxConfig, sandboxDown, sandboxUp, workstationCommand, type ClusterPod } from '../../src/sandbox/index.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NAME = `ktk${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const MANAGER_SA = 'system:serviceaccount:kubetun:traffic-manager';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

/** In the sandbox's workstation namespace, as `kubetun sandbox exec` would. */
function ws(command: string[]): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  return run(file, args, env);
}

const kubetun = (...args: string[]): Promise<Run> => ws(['node', KUBETUN, ...args]);

/** In the network namespace of a pod (its first container's process). */
function inPod(pod: ClusterPod, command: string[]): Promise<Run> {
  assert.ok(pod.pid !== null, `pod ${pod.name} has no process`);
  return run('nsenter', ['-t', String(pod.pid), '-n', '--', ...command]);
}

async function managerPod(): Promise<ClusterPod> {
  const pod = podsOf((await readCluster(config)).pods, 'traffic-manager', config.manager.namespace).find((p) => p.ready);
  assert.ok(pod !== undefined, 'no ready traffic-manager pod');
  return pod;
}

async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const [answer] = await sandboxApi(config, [{ method, path, ...(body === undefined ? {} : { body }) }]);
  assert.ok(answer !== undefined && answer.status >= 200 && answer.status < 300, `${method} ${path}: ${answer?.status} ${answer?.body}`);
  return JSON.parse(answer.body) as T;
}

/** What `kubectl auth can-i --as=system:serviceaccount:kubetun:traffic-manager VERB RESOURCE -n NAMESPACE` asks. */
async function managerCan(verb: string, resource: string, namespace?: string): Promise<boolean> {
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: MANAGER_SA,
      groups: ['system:serviceaccounts', 'system:serviceaccounts:kubetun', 'system:authenticated'],
      resourceAttributes: { verb, resource, ...(namespace === undefined ? {} : { namespace }) },
    },
  };
  const answer = await api<{ status: { allowed: boolean } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', review);
  return answer.status.allowed;
}

describe('the traffic manager in the sandbox cluster: loopback tunnels, non-root, least privilege', { skip: controlPlaneSkipReason() ?? false }, () => {
  let echo: ClusterPod;

  before(async () => {
    await sandboxUp(NAME);
    for (const command of ['install', 'connect']) {
      const r = await kubetun(command);
      assert.equal(r.code, 0, `kubetun ${command}: ${r.stderr}${r.stdout}`);
    }
    const found = podsOf((await readCluster(config)).pods, 'echo').find((p) => p.ready && p.pid !== null);
    assert.ok(found !== undefined, 'no ready echo pod');
    echo = found;
  });

  after(async () => {
    await kubetun('quit');
    await sandboxDown(NAME);
  });

  test('from another pod, the manager pod IP and its Service refuse the tunnel port; the health port answers', async () => {
    const manager = await managerPod();
    const service = await api<{ spec: { clusterIP: string } }>('GET', `/api/v1/namespaces/${config.manager.namespace}/services/traffic-manager`);
    // The pod reaches the cluster at all: the echo Service and the manager's health endpoint answer.
    assert.equal((await inPod(echo, ['curl', '-sS', '-m', '5', '-o', '/dev/null', 'http://10.96.0.20/'])).code, 0);
    const health = await inPod(echo, ['curl', '-sS', '-m', '5', `http://${manager.ipv4}:8082/readyz`]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal(health.stdout, 'ready\n');
    for (const target of [manager.ipv4, `[${manager.ipv6}]`, service.spec.clusterIP]) {
      const tunnel = await inPod(echo, ['curl', '-sS', '-g', '-m', '5', '--http2-prior-knowledge', '-X', 'POST', `http://${target}:8081/kubetun.manager.v1.Manager/Version`]);
      // 7: connection refused (nothing listens there), not a timeout.
      assert.equal(tunnel.code, 7, `${target}:8081 answered: ${tunnel.stdout}${tunnel.stderr}`);
    }
    // The health port serves nothing else.
    const other = await inPod(echo, ['curl', '-sS', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${manager.ipv4}:8082/kubetun.manager.v1.Manager/Version`]);
    assert.equal(other.stdout, '404');
  });

  test('connect through the port-forward still works: curl http://echo.default from the workstation', async () => {
    const r = await ws(['curl', '-sS', '-m', '5', 'http://echo.default']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pod: echo-/m);
  });

  test('the manager runs as uid/gid 65532 with no privileges; the NetworkPolicy admits only the health, agent and webhook ports', async () => {
    const manager = await managerPod();
    const status = readFileSync(`/proc/${manager.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    assert.match(status, /^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^CapEff:\s+0+$/m);
    const policy = await api<{ spec: unknown }>('GET', `/apis/networking.k8s.io/v1/namespaces/${config.manager.namespace}/networkpolicies/traffic-manager`);
    assert.deepEqual(policy.spec, {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'traffic-manager' } },
      policyTypes: ['Ingress'],
      // Health probes, arriving agents (checked by pod IP) and the API server calling the webhook (TLS).
      ingress: [{ ports: [{ protocol: 'TCP', port: 8082 }, { protocol: 'TCP', port: 8083 }, { protocol: 'TCP', port: 8444 }] }],
    });
  });

  test('SubjectAccessReview: the manager may create Services only in its own namespace, and reads only what it uses', async () => {
    assert.equal(await managerCan('create', 'services', 'default'), false, 'create services -n default');
    assert.equal(await managerCan('create', 'services', 'kube-system'), false, 'create services -n kube-system');
    assert.equal(await managerCan('create', 'services', 'kubetun'), true, 'create services -n kubetun (the dry-run probe)');
    assert.equal(await managerCan('delete', 'services', 'kubetun'), false, 'delete services -n kubetun');
    for (const resource of ['nodes', 'pods', 'namespaces', 'services']) assert.equal(await managerCan('list', resource), true, `list ${resource}`);
    assert.equal(await managerCan('list', 'endpoints'), false, 'list endpoints');
    assert.equal(await managerCan('get', 'secrets', 'kubetun'), false, 'get secrets -n kubetun');
  });

  test("the manager discovers the cluster's namespaces and the nodes' addresses", async () => {
    const manager = await managerPod();
    const [log] = await sandboxApi(config, [{ method: 'GET', path: `/api/v1/namespaces/${config.manager.namespace}/pods/${manager.name}/log` }]);
    assert.equal(log?.status, 200, log?.body);
    const discovered = log!.body
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; namespaces?: number; nodeAddresses?: string[] })
      .filter((entry) => entry.msg === 'cluster networking discovered')
      .at(-1);
    assert.ok(discovered !== undefined, log!.body.slice(-2000));
    // default, kube-system, kube-public, kube-node-lease, kubetun, shop at least.
    assert.ok((discovered.namespaces ?? 0) >= 6, JSON.stringify(discovered));
    const nodes = await api<{ items: { status: { addresses: { type: string; address: string }[] } }[] }>('GET', '/api/v1/nodes');
    const internal = nodes.items.flatMap((n) => n.status.addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address));
    assert.ok(internal.length > 0);
    for (const address of internal) assert.ok(discovered.nodeAddresses?.includes(address), `${address} not in ${JSON.stringify(discovered)}`);
  });
});
