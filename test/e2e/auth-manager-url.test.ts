// A traffic manager reached directly (--manager-url) admits only Kubernetes users allowed to port-forward to it:
// against the sandbox's real API server (TokenReview, SubjectAccessReview, RBAC, ServiceAccount tokens from the
// TokenRequest API). The manager runs in the sandbox's node namespace with a kubeconfig of its own ServiceAccount
// (as a manager outside its pod would) and serves TLS on the node's link address, which the workstation reaches
// directly; the clients are real: a raw HTTP/2 probe and `kubetun connect`.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sandboxApi, sandboxConfig, sandboxDown, sandboxManagerUser, sandboxUp, workstationCommand } from '../../src/sandbox/index.js';
import { controlPlaneSkipReason } from '../helpers/control-plane.js';
import { selfSignedCertificate } from '../tunnel/tunnel-fixture.js';

const KUBETUN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PROBE = fileURLToPath(new URL('./auth-probe.js', import.meta.url));
const NAME = `kta${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const MANAGER_POD = 'traffic-manager-direct';
const MANAGER_URL = `https://${config.link.node.ipv4}:18443`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function ws(command: string[], timeoutMs = 30_000): Promise<Run> {
  const { file, args, env } = workstationCommand(config, command);
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

const kubetun = (...args: string[]): Promise<Run> => ws(['node', KUBETUN, ...args]);

describe('a traffic manager reached by URL authenticates Kubernetes users', { skip: controlPlaneSkipReason() ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-auth-e2e-'));
  const files = { allowed: '', denied: '', allowedToken: join(dir, 'allowed.token'), deniedToken: join(dir, 'denied.token'), bogusToken: join(dir, 'bogus.token') };
  let tls: { certFile: string; keyFile: string };
  let manager: ChildProcess | undefined;
  let managerLog = '';

  before(async () => {
    await sandboxUp(NAME);
    // The node namespace routes only its pods' subnets; a manager there dials Services too (kube-proxy's DNAT
    // sends them on), as one in a pod does through its default route.
    for (const cidr of config.serviceCidrs) {
      const family = cidr.includes(':') ? '-6' : '-4';
      await promisify(execFile)('ip', ['netns', 'exec', config.namespaces.node, 'ip', family, 'route', 'replace', cidr, 'dev', config.bridge.name]);
    }
    const manager_ = await sandboxManagerUser(config, 'manager', false);
    // What a manager needs to review its clients: create tokenreviews and subjectaccessreviews.
    const [bound] = await sandboxApi(config, [
      {
        method: 'POST',
        path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
        body: {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: `${NAME}-manager-auth-delegator` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
          subjects: [{ kind: 'ServiceAccount', name: 'manager', namespace: config.manager.namespace }],
        },
      },
    ]);
    assert.equal(bound?.status, 201, bound?.body);
    const allowed = await sandboxManagerUser(config, 'allowed', true);
    const denied = await sandboxManagerUser(config, 'denied', false);
    files.allowed = allowed.kubeconfig;
    files.denied = denied.kubeconfig;
    writeFileSync(files.allowedToken, allowed.token, { mode: 0o600 });
    writeFileSync(files.deniedToken, denied.token, { mode: 0o600 });
    writeFileSync(files.bogusToken, 'bogus-token-0123456789abcdef', { mode: 0o600 });
    tls = selfSignedCertificate(dir, config.link.node.ipv4);

    manager = spawn(
      'ip',
      [
        'netns', 'exec', config.namespaces.node, process.execPath, KUBETUN, 'traffic-manager',
        '--listen', '127.0.0.1:18081', '--listen-tls', `${config.link.node.ipv4}:18443`, '--tls-cert', tls.certFile, '--tls-key', tls.keyFile,
        '--kubeconfig', manager_.kubeconfig, '--pod-cidr-strategy', 'environment', '--dns-server', config.clusterDns.ipv4,
        ...config.podCidrs.flatMap((c) => ['--pod-cidr', c]), ...config.serviceCidrs.flatMap((c) => ['--service-cidr', c]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, POD_NAME: MANAGER_POD, POD_NAMESPACE: config.manager.namespace } },
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the manager did not listen within 20 s: ${managerLog}`)), 20_000);
      manager!.stderr!.on('data', (chunk: Buffer) => {
        managerLog += chunk.toString();
        if (managerLog.includes('traffic manager listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      manager!.once('exit', (code) => reject(new Error(`the manager exited with ${code}: ${managerLog}`)));
    });
  });

  after(async () => {
    await kubetun('quit');
    if (manager?.pid !== undefined && manager.exitCode === null) {
      manager.kill('SIGTERM');
      await new Promise((resolve) => manager!.once('exit', resolve));
    }
    await sandboxDown(NAME);
    rmSync(dir, { recursive: true, force: true });
  });

  const probe = async (...tokenFile: string[]): Promise<Record<string, string>> => {
    const r = await ws(['node', PROBE, MANAGER_URL, tls.certFile, ...tokenFile]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, string>;
  };

  test('without credentials, or with a token the API server does not know: 401 on ArriveAsClient, CONNECT, connect-udp and DNS', async () => {
    const all401 = { arrive: '401 unauthenticated', connect: '401 unauthenticated', connectUdp: '401 unauthenticated', dns: '401 unauthenticated' };
    assert.deepEqual(await probe(), all401);
    assert.deepEqual(await probe(files.bogusToken), all401);
  });

  test('with the token of a ServiceAccount that lacks pods/portforward on the manager: 403', async () => {
    assert.deepEqual(await probe(files.deniedToken), { arrive: '403 forbidden', connect: '403 forbidden', connectUdp: '403 forbidden', dns: '403 forbidden' });
    const r = await kubetun('connect', '--manager-url', MANAGER_URL, '--manager-ca', tls.certFile, '--kubeconfig', files.denied);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /may not use this traffic manager: it needs create on pods\/portforward in namespace kubetun/);
    await kubetun('quit');
  });

  test('plain http:// to the manager is refused by the client, naming https', async () => {
    const r = await kubetun('connect', '--manager-url', `http://${config.link.node.ipv4}:18081`, '--kubeconfig', files.allowed);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /must be https:\/\//);
  });

  test('with one that has it: kubetun connect --manager-url --manager-ca works and curl http://echo.default answers', async () => {
    const r = await kubetun('connect', '--manager-url', MANAGER_URL, '--manager-ca', tls.certFile, '--kubeconfig', files.allowed);
    assert.equal(r.code, 0, r.stderr);
    try {
      const curl = await ws(['curl', '-sS', '-m', '5', 'http://echo.default']);
      const rootLog = await ws(['tail', '-n', '30', `/run/kubetun/sandbox-${NAME}/root-daemon.log`]);
      assert.equal(curl.code, 0, `${curl.stderr}\nroot daemon:\n${rootLog.stdout}\nmanager:\n${managerLog.split('\n').slice(-30).join('\n')}`);
      assert.match(curl.stdout, /^pod: echo-/m);
      const status = await kubetun('status', '-o', 'json');
      assert.equal((JSON.parse(status.stdout) as { network?: { tunnel?: string } }).network?.tunnel, 'connected', 'the root daemon authenticated its own connection');
    } finally {
      await kubetun('quit');
    }
  });
});
