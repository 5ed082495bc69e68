// systemd-resolved does not run on this machine (nor in CI): these tests stub resolvectl and check what kubetun
// asks of it. The managed resolv.conf path, which does run here, is tested end to end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResolvedDns, resolvedRunning } from '../../src/rootd/dns/resolved-dns.js';

test('split DNS (resolvectl stubbed): per-link server, search and routing-only domains, never the default route', async () => {
  const calls: string[] = [];
  const resolved = new ResolvedDns('kt0', async (file, args) => void calls.push([file, ...args].join(' ')));
  await resolved.apply('198.18.255.53', ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], ['shop', 'default']);
  await resolved.revert();
  assert.deepEqual(calls, [
    'resolvectl dns kt0 198.18.255.53',
    'resolvectl domain kt0 shop.svc.cluster.local svc.cluster.local cluster.local ~svc ~shop ~default',
    'resolvectl default-route kt0 false',
    'resolvectl revert kt0',
  ]);
});

test('resolved is detected by its socket (absent here, so the managed resolv.conf is used)', () => {
  assert.equal(resolvedRunning('/etc/resolv.conf', '/nonexistent/io.systemd.Resolve'), false);
});
