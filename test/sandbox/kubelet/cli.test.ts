// The kubelet program's refusals, before it talks to any API server: each names what is wrong and what to do.
// Runs in a throwaway network namespace (the bridge check reads its interfaces).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireRoot, TestNetns } from '../../helpers/netns.js';
import { renderKubeconfig } from '../../../src/sandbox/control-plane/kubeconfig.js';

const MAIN = fileURLToPath(new URL('../../../src/sandbox/kubelet/main.js', import.meta.url));

test('kubelet program: usage, kubeconfig, image table and bridge mistakes exit with a clear message', async (t: TestContext) => {
  if (!requireRoot(t)) return;
  const ns = await TestNetns.create('kubelet-cli');
  const dir = mkdtempSync(join(tmpdir(), 'kt-kubelet-cli-'));
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    // Never used to connect: every run below stops before its first request.
    writeFileSync(kubeconfig, renderKubeconfig({ name: 'x', server: 'https://198.18.0.1:6443', caPem: 'CA', certPem: 'CERT', keyPem: 'KEY' }));
    const badTable = join(dir, 'images.json');
    writeFileSync(badTable, '{"busybox": "sh"}');
    const args = (over: Record<string, string>): string[] => {
      const flags: Record<string, string> = {
        kubeconfig,
        'node-name': 'n1',
        'node-ip': '198.18.0.2',
        'pod-cidr': '10.244.1.0/24',
        bridge: 'ktbr0',
        'netns-prefix': 'ktc-',
        'state-dir': join(dir, 'state'),
        ...over,
      };
      return [MAIN, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
    };
    const run = (argv: string[]): Promise<{ code: number; stderr: string }> => ns.exec(process.execPath, argv);

    const usage = await run([MAIN, '--node-name', 'n1']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /kubelet: missing --kubeconfig, --node-ip, --pod-cidr, --bridge, --netns-prefix, --state-dir\nusage: kubelet/);

    const noConfig = await run(args({ kubeconfig: join(dir, 'nope') }));
    assert.equal(noConfig.code, 1);
    assert.match(noConfig.stderr, /kubelet: cannot read the kubeconfig .*nope: .*give --kubeconfig an admin kubeconfig file/);

    const table = await run(args({ 'image-map': badTable }));
    assert.equal(table.code, 1);
    assert.match(table.stderr, /the image table .*images\.json has a bad entry for "busybox"/);

    const noBridge = await run(args({}));
    assert.equal(noBridge.code, 1);
    assert.match(noBridge.stderr, /the bridge ktbr0 does not exist in the kubelet's network namespace: create it \(ip link add ktbr0 type bridge\) or fix --bridge/);

    const notBridge = await run(args({ bridge: 'lo' }));
    assert.equal(notBridge.code, 1);
    assert.match(notBridge.stderr, /lo is a plain interface, not a bridge/);
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
