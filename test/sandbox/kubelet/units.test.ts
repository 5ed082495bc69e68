// The kubelet's pure parts: address allocation, the image table, pod names and environment, resolv.conf, the
// command line and the port-forward query.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { gatewayOf, Ipam, IpamExhaustedError, podRange } from '../../../src/sandbox/kubelet/ipam.js';
import { imageRepository, ImageTableError, parseImageTable, resolveCommand } from '../../../src/sandbox/kubelet/images.js';
import { containerEnvironment, expandReferences, nodeVethName, podNetnsName, podResolvConf } from '../../../src/sandbox/kubelet/pod-env.js';
import { parseKubeletArgs, UsageError } from '../../../src/sandbox/kubelet/options.js';
import { parsePorts } from '../../../src/sandbox/kubelet/server.js';
import { parsePrefix } from '../../../src/netstack/wire/ip-address.js';
import { secretVolumeFiles, secretVolumeMounts, VolumeSetupError, writeVolume } from '../../../src/sandbox/kubelet/secret-volumes.js';
import type { Pod } from '../../../src/sandbox/kubelet/types.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kt-kubelet-unit-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pod = (over: Partial<Pod['spec']> = {}, meta: Partial<Pod['metadata']> = {}): Pod => ({
  metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', labels: { app: 'web' }, ...meta },
  spec: { nodeName: 'node-1', serviceAccountName: 'builder', containers: [{ name: 'main' }], ...over },
});

test('ipam: gateway and pod range skip the network, gateway and IPv4 broadcast addresses', () => {
  assert.equal(gatewayOf(parsePrefix('10.244.1.0/24')), '10.244.1.1');
  assert.equal(gatewayOf(parsePrefix('fd10:244:1::/64')), 'fd10:244:1::1');
  const v4 = podRange(parsePrefix('10.244.1.0/24'))!;
  assert.equal(v4.last - v4.first + 1n, 253n);
  assert.equal(podRange(parsePrefix('10.0.0.0/31')), null);
});

test('ipam: allocations are distinct, inside the CIDR, never the gateway, and survive a restart', () => {
  fc.assert(
    fc.property(fc.integer({ min: 24, max: 29 }), fc.integer({ min: 1, max: 12 }), (length, count) => {
      withDir((dir) => {
        const cidr = `10.244.8.0/${length}`;
        const file = join(dir, 'ipam.json');
        const ipam = new Ipam([cidr], file);
        const capacity = Number(podRange(parsePrefix(cidr))!.last - podRange(parsePrefix(cidr))!.first + 1n);
        const owners = Array.from({ length: Math.min(count, capacity) }, (_, i) => `pod-${i}`);
        const addresses = owners.map((o) => ipam.allocate(o)[0]!);
        assert.equal(new Set(addresses).size, addresses.length);
        for (const a of addresses) {
          const last = Number(a.split('.')[3]);
          assert.ok(last >= 2 && last < 2 ** (32 - length) - 1, `${a} in ${cidr}`);
        }
        // Asking again gives the same address; a new Ipam reads the same allocations.
        assert.deepEqual(ipam.allocate('pod-0'), [addresses[0]]);
        const again = new Ipam([cidr], file);
        assert.deepEqual(again.allocate('pod-0'), [addresses[0]]);
        if (owners.length === capacity) assert.throws(() => again.allocate('one-more'), IpamExhaustedError);
      });
    }),
    { numRuns: 30 },
  );
});

test('ipam: released and unretained addresses are given out again; dual stack gets one of each', () => {
  withDir((dir) => {
    const ipam = new Ipam(['10.244.1.0/24', 'fd10:244:1::/64'], join(dir, 'ipam.json'));
    assert.deepEqual(ipam.allocate('a'), ['10.244.1.2', 'fd10:244:1::2']);
    assert.deepEqual(ipam.allocate('b'), ['10.244.1.3', 'fd10:244:1::3']);
    ipam.release('a');
    assert.deepEqual(ipam.allocate('c'), ['10.244.1.2', 'fd10:244:1::2']);
    ipam.retain(new Set(['c']));
    assert.deepEqual([...ipam.owners()], ['c']);
    assert.deepEqual(ipam.allocate('d'), ['10.244.1.3', 'fd10:244:1::3']);
  });
});

test('ipam: an exhausted CIDR says which and what to do', () => {
  withDir((dir) => {
    const ipam = new Ipam(['10.244.1.0/30'], join(dir, 'ipam.json'));
    assert.deepEqual(ipam.allocate('a'), ['10.244.1.2']);
    assert.throws(() => ipam.allocate('b'), /10\.244\.1\.0\/30 has no free address left.*--pod-cidr/);
  });
});

test('images: repository drops tag and digest but keeps a registry port', () => {
  assert.equal(imageRepository('busybox:1.36'), 'busybox');
  assert.equal(imageRepository('registry:5000/team/app'), 'registry:5000/team/app');
  assert.equal(imageRepository('registry:5000/team/app:v2@sha256:abc'), 'registry:5000/team/app');
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9]+(\/[a-z0-9]+)*$/), fc.stringMatching(/^[a-zA-Z0-9_.-]{1,20}$/), (repo, tag) => {
      assert.equal(imageRepository(`${repo}:${tag}`), repo);
    }),
  );
});

test('images: command and args follow the container runtime rules', () => {
  const table = parseImageTable(JSON.stringify({ iperf: ['iperf3', '--server'], echo: { entrypoint: ['node', 'echo.js'], args: ['--port', '80'] } }), 't.json');
  const run = (c: object): unknown => resolveCommand({ name: 'c', ...c }, table, 't.json');
  assert.deepEqual(run({ image: 'iperf:3' }), { ok: true, argv: ['iperf3', '--server'] });
  assert.deepEqual(run({ image: 'iperf', args: ['-p', '9'] }), { ok: true, argv: ['iperf3', '-p', '9'] });
  assert.deepEqual(run({ image: 'echo:1', command: ['sh'] }), { ok: true, argv: ['sh'] });
  assert.deepEqual(run({ image: 'unknown', command: ['python3', '-m', 'http.server'], args: ['8080'] }), {
    ok: true,
    argv: ['python3', '-m', 'http.server', '8080'],
  });
  const missing = resolveCommand({ name: 'c', image: 'ghcr.io/x/y:1' }, table, 't.json');
  assert.equal(missing.ok, false);
  assert.match((missing as { message: string }).message, /image "ghcr\.io\/x\/y:1".*not in the image table t\.json.*give the container a command/);
  const none = resolveCommand({ name: 'c', image: 'y' }, new Map(), undefined);
  assert.match((none as { message: string }).message, /no image table was given \(--image-map\)/);
});

test('images: a bad table is refused with the file and the entry named', () => {
  assert.throws(() => parseImageTable('{', 'a.json'), (e: Error) => e instanceof ImageTableError && /a\.json is not JSON/.test(e.message));
  assert.throws(() => parseImageTable('[]', 'a.json'), /must be a JSON object/);
  assert.throws(() => parseImageTable('{"x": []}', 'a.json'), /bad entry for "x"/);
  assert.throws(() => parseImageTable('{"x": {"entrypoint": "sh"}}', 'a.json'), /bad entry for "x"/);
});

test('names: pod namespaces are unique, valid and bounded; veth names fit IFNAMSIZ', () => {
  assert.equal(podNetnsName('kt-pod-', pod({}, { namespace: 'default', name: 'echo' })), 'kt-pod-echo');
  assert.equal(podNetnsName('kt-pod-', pod({}, { namespace: 'shop', name: 'echo' })), 'kt-pod-echo_shop');
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/), fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/), (name, namespace) => {
      const netns = podNetnsName('kt-pod-', pod({}, { name, namespace }));
      assert.ok(netns.length <= 64 && /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns), netns);
      const veth = nodeVethName(netns);
      assert.ok(veth.length <= 15 && /^kv[0-9a-f]+$/.test(veth));
    }),
  );
  const long = 'a'.repeat(200);
  assert.notEqual(podNetnsName('p-', pod({}, { name: `${long}x` })), podNetnsName('p-', pod({}, { name: `${long}y` })));
});

test('env: fieldRefs, $(VAR) references and the API server address', () => {
  const env = containerEnvironment(
    {
      name: 'main',
      env: [
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
        { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'URL', value: 'http://$(POD_IP):80/$(UNKNOWN)/$$(NAME)' },
      ],
    },
    { pod: pod(), podIPs: ['10.244.1.5', 'fd10::5'], hostIP: '198.18.0.2', kubernetesServiceHost: '10.96.0.1', kubernetesServicePort: 443 },
  );
  assert.deepEqual(env, {
    HOSTNAME: 'web-1',
    KUBERNETES_SERVICE_HOST: '10.96.0.1',
    KUBERNETES_SERVICE_PORT: '443',
    KUBERNETES_SERVICE_PORT_HTTPS: '443',
    POD_IP: '10.244.1.5',
    POD_IPS: '10.244.1.5,fd10::5',
    NAME: 'web-1',
    NS: 'shop',
    NODE: 'node-1',
    SA: 'builder',
    APP: 'web',
    URL: 'http://10.244.1.5:80/$(UNKNOWN)/$(NAME)',
  });
  assert.equal(expandReferences('$(A)$(B)', { A: '1' }), '1$(B)');
});

test("resolv.conf: ClusterFirst searches the pod's namespace; Default copies the node's", () => {
  const dns = { clusterDns: '10.96.0.10', clusterDomain: 'cluster.local', nodeResolvConf: 'nameserver 198.18.0.53\n' };
  assert.equal(podResolvConf(pod(), dns), 'nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n');
  assert.equal(podResolvConf(pod({ dnsPolicy: 'Default' }), dns), 'nameserver 198.18.0.53\n');
});

test('command line: a complete one parses; each mistake names the flag', () => {
  const base = ['--kubeconfig', 'k', '--node-name', 'n', '--node-ip', '198.18.0.2', '--pod-cidr', '10.244.1.0/24', '--bridge', 'br', '--netns-prefix', 'p-', '--state-dir', 's'];
  const options = parseKubeletArgs([...base, '--pod-cidr', 'fd10:244:1::/64', '--port', '10251']);
  assert.deepEqual(options.podCidrs, ['10.244.1.0/24', 'fd10:244:1::/64']);
  assert.equal(options.port, 10251);
  assert.equal(options.logLevel, 'info');
  const refuse = (args: string[], message: RegExp): void => assert.throws(() => parseKubeletArgs(args), (e: Error) => e instanceof UsageError && message.test(e.message));
  refuse(base.slice(2), /missing --kubeconfig/);
  refuse([...base, '--port', '70000'], /--port must be a port number/);
  refuse([...base, '--pod-cidr', '10.245.0.0/24'], /one IPv4 --pod-cidr/);
  refuse([...base.slice(0, 7), '10.244.1.0/33', ...base.slice(8)], /--pod-cidr 10\.244\.1\.0\/33/);
  refuse([...base, '--netns-prefix', 'a/b'], /--netns-prefix "a\/b"/);
  refuse([...base, '--kubernetes-service-host', '10.96.0.1'], /together/);
  refuse([...base, '--log-level', 'loud'], /--log-level/);
  refuse([...base, '--frobnicate'], /frobnicate/);
  refuse([...base, '--resolv-conf', '/nonexistent/resolv.conf'], /--resolv-conf \/nonexistent\/resolv.conf does not exist/);
  assert.equal(parseKubeletArgs([...base, '--resolv-conf', '/etc/hosts']).resolvConf, '/etc/hosts');
});

test('port-forward query: port (from the API server) or ports, repeated or comma-separated', () => {
  assert.deepEqual(parsePorts(new URLSearchParams('port=8080')), [8080]);
  assert.deepEqual(parsePorts(new URLSearchParams('ports=80,8080&ports=9')), [80, 8080, 9]);
  assert.equal(parsePorts(new URLSearchParams('')), null);
  assert.equal(parsePorts(new URLSearchParams('port=0')), null);
  assert.equal(parsePorts(new URLSearchParams('port=http')), null);
});

const b64 = (text: string): string => Buffer.from(text).toString('base64');

test('secret volume: every key as a file (mode 0644 by default), or the listed items at their paths with their modes', () => {
  const data = { 'tls.key': b64('KEY'), 'tls.crt': b64('CERT') };
  const all = secretVolumeFiles('tls', { secretName: 's' }, data);
  assert.deepEqual(all.map((f) => [f.path, f.content.toString(), f.mode]), [['tls.crt', 'CERT', 0o644], ['tls.key', 'KEY', 0o644]]);
  const items = secretVolumeFiles('tls', { secretName: 's', defaultMode: 0o400, items: [{ key: 'tls.key', path: 'keys/server.key' }, { key: 'tls.crt', path: 'c', mode: 0o444 }] }, data);
  assert.deepEqual(items.map((f) => [f.path, f.content.toString(), f.mode]), [['keys/server.key', 'KEY', 0o400], ['c', 'CERT', 0o444]]);
});

test('secret volume: a missing Secret or key fails as the kubelet says it, unless optional; bad paths and modes are refused', () => {
  const fails = (fn: () => unknown, message: RegExp): void => assert.throws(fn, (e: Error) => e instanceof VolumeSetupError && message.test(e.message));
  fails(() => secretVolumeFiles('tls', { secretName: 'gone' }, null), /^MountVolume\.SetUp failed for volume "tls" : secret "gone" not found$/);
  assert.deepEqual(secretVolumeFiles('tls', { secretName: 'gone', optional: true }, null), []);
  fails(() => secretVolumeFiles('tls', { secretName: 's', items: [{ key: 'nope', path: 'x' }] }, {}), /secret "s" references non-existent secret key: nope/);
  assert.deepEqual(secretVolumeFiles('tls', { secretName: 's', optional: true, items: [{ key: 'nope', path: 'x' }] }, {}), []);
  for (const path of ['../escape', '/abs', 'a//b', 'a/./b', '']) {
    fails(() => secretVolumeFiles('tls', { secretName: 's', items: [{ key: 'k', path }] }, { k: b64('v') }), /item path .* must be relative/);
  }
  fails(() => secretVolumeFiles('tls', { secretName: 's', defaultMode: 0o1777 }, {}), /defaultMode 1023 is not a file mode/);
});

test('secret volume: written with its modes (umask or not); with an fsGroup, the group owns it and may read it', () => {
  withDir((dir) => {
    const volume = join(dir, 'tls');
    writeVolume(volume, [{ path: 'keys/server.key', content: Buffer.from('KEY'), mode: 0o400 }, { path: 'tls.crt', content: Buffer.from('CERT'), mode: 0o666 }], undefined);
    assert.equal(readFileSync(join(volume, 'keys/server.key'), 'utf8'), 'KEY');
    assert.equal(statSync(join(volume, 'keys/server.key')).mode & 0o7777, 0o400);
    assert.equal(statSync(join(volume, 'tls.crt')).mode & 0o7777, 0o666);
    // Written afresh: a file of an earlier set-up is gone.
    writeVolume(volume, [{ path: 'tls.key', content: Buffer.from('K2'), mode: 0o400 }], 4321);
    assert.deepEqual(readdirSync(volume), ['tls.key']);
    const key = statSync(join(volume, 'tls.key'));
    assert.equal(key.gid, 4321);
    assert.equal(key.mode & 0o7777, 0o440);
    assert.equal(statSync(volume).gid, 4321);
    assert.equal(statSync(volume).mode & 0o7777, 0o2755);
  });
});

test("secret volume mounts: a container's mounts of secret volumes only; subPath and relative mount paths are refused", () => {
  const volumes = [{ name: 'tls', secret: { secretName: 's' } }, { name: 'scratch' }];
  const dir = (name: string): string => `/pods/u/volumes/${name}`;
  const mounts = (volumeMounts: { name: string; mountPath: string; subPath?: string }[]): ReturnType<typeof secretVolumeMounts> =>
    secretVolumeMounts({ volumes }, { name: 'c', volumeMounts }, dir);
  assert.deepEqual(mounts([{ name: 'tls', mountPath: '/etc/tls' }, { name: 'scratch', mountPath: '/tmp' }]), { ok: true, mounts: [{ source: '/pods/u/volumes/tls', target: '/etc/tls' }] });
  const sub = mounts([{ name: 'tls', mountPath: '/etc/tls', subPath: 'tls.crt' }]);
  assert.ok(!sub.ok && sub.reason === 'CreateContainerConfigError' && /container c, volume mount tls: subPath is not supported/.test(sub.message));
  const relative = mounts([{ name: 'tls', mountPath: 'etc/tls' }]);
  assert.ok(!relative.ok && /mountPath "etc\/tls" must be an absolute path/.test(relative.message));
});
