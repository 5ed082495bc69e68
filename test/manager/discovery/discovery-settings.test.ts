// The discovery settings of `kubetun traffic-manager`: the default strategy follows whether a Kubernetes config
// exists, flags fix facts, and wrong values are usage errors naming the flag.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { ConfigError, managerSettings } from '../../../src/manager/manager-config.js';

const main = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

test('default strategy: auto in a pod or with a kubeconfig, environment otherwise; flag beats env', () => {
  assert.equal(managerSettings({}, {}).discovery.podCidrStrategy, 'environment');
  assert.equal(managerSettings({}, {}).discovery.kube, undefined);
  const inPod = managerSettings({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }).discovery;
  assert.equal(inPod.podCidrStrategy, 'auto');
  assert.deepEqual(inPod.kube, { inCluster: true });
  const withFile = managerSettings({ kubeconfig: '/k.yaml' }, {}).discovery;
  assert.equal(withFile.podCidrStrategy, 'auto');
  assert.deepEqual(withFile.kube, { kubeconfig: '/k.yaml', inCluster: false });
  assert.deepEqual(managerSettings({}, { KUBECONFIG: '/env.yaml' }).discovery.kube, { kubeconfig: '/env.yaml', inCluster: false });
  const env = { KUBECONFIG: '/env.yaml', KUBETUN_POD_CIDR_STRATEGY: 'coverPodIPs' };
  assert.equal(managerSettings({}, env).discovery.podCidrStrategy, 'coverPodIPs');
  assert.equal(managerSettings({ podCidrStrategy: 'nodePodCIDRs' }, env).discovery.podCidrStrategy, 'nodePodCIDRs');
});

test('facts given by flags or the environment are fixed; the environment strategy fixes the pod CIDRs', () => {
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };
  assert.deepEqual(managerSettings({}, env).discovery.fixed, { podCidrs: false, serviceCidrs: false, dns: false, clusterDomain: false });
  const given = managerSettings({ podCidr: ['10.244.0.0/16'], dnsServer: '10.96.0.10', clusterDomain: 'corp.example' }, { ...env, KUBETUN_SERVICE_CIDRS: '10.96.0.0/12' });
  assert.deepEqual(given.discovery.fixed, { podCidrs: true, serviceCidrs: true, dns: true, clusterDomain: true });
  assert.equal(managerSettings({ podCidrStrategy: 'environment' }, env).discovery.fixed.podCidrs, true);
});

test('a strategy that is not one, or that needs the API without a Kubernetes config, is a ConfigError', () => {
  assert.throws(
    () => managerSettings({ podCidrStrategy: 'nodes' }, { KUBECONFIG: '/k' }),
    (e: unknown) => e instanceof ConfigError && /--pod-cidr-strategy "nodes" is not one of auto, nodePodCIDRs, coverPodIPs, environment/.test(e.message),
  );
  assert.throws(
    () => managerSettings({ podCidrStrategy: 'coverPodIPs' }, {}),
    (e: unknown) => e instanceof ConfigError && /there is no Kubernetes config: run in a pod .* or give --kubeconfig/.test(e.message),
  );
});

test('the command exits with 2 for a bad strategy and for a kubeconfig file that does not exist', () => {
  const env = { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
  const bad = spawnSync(process.execPath, [main, 'traffic-manager', '--pod-cidr-strategy', 'guess'], { encoding: 'utf8', env });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--pod-cidr-strategy "guess"/);
  const missing = spawnSync(process.execPath, [main, 'traffic-manager', '--kubeconfig', '/nonexistent/kubeconfig'], { encoding: 'utf8', env });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /the kubeconfig file \/nonexistent\/kubeconfig \(from --kubeconfig\) does not exist/);
});
