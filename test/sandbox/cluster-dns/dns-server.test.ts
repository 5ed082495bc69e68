// The cluster DNS before it has heard from the API, and with its upstream down: SERVFAIL, never a wrong answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireRoot, TestNetns } from '../../helpers/netns.js';
import { unreachableKubeconfig } from './service-account.js';

const PROGRAM = fileURLToPath(new URL('../../../src/sandbox/cluster-dns/main.js', import.meta.url));

test('no API yet: cluster names get SERVFAIL; a dead upstream gives SERVFAIL for other names (UDP and TCP)', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kt-cdns-srv-'));
  const ns = await TestNetns.create('cdnssrv');
  try {
    const kubeconfig = unreachableKubeconfig(dir);
    const server = ns.spawn(process.execPath, [PROGRAM, '--kubeconfig', kubeconfig, '--listen', '127.0.0.1', '--upstream', '127.0.0.2:5353']);
    let log = '';
    server.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    for (let i = 0; i < 50 && !log.includes('serving DNS'); i++) await sleep(100);
    assert.ok(log.includes('serving DNS'), log);
    for (const tcp of [false, true]) {
      for (const name of ['echo.default.svc.cluster.local', 'www.upstream.test']) {
        const r = await ns.exec('dig', ['@127.0.0.1', '+tries=1', '+time=5', ...(tcp ? ['+tcp'] : []), name, 'A']);
        assert.match(r.stdout, /status: SERVFAIL/, `${name} ${tcp ? 'TCP' : 'UDP'}: ${r.stdout}`);
      }
    }
    assert.match(log, /upstream resolver failed/);
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
