import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { ConnectRequestSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { tunnelEndpoints } from '../../src/userd/tunnel-endpoints.js';

const noLookup = (host: string): Promise<string[]> => Promise.reject(new Error(`no lookup expected for ${host}`));

test('a direct manager URL: its address, or its host resolved', async () => {
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { managerUrl: 'https://10.96.0.7:8081' }), noLookup), ['10.96.0.7']);
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { managerUrl: 'http://[fd10:96::7]:8081' }), noLookup), ['fd10:96::7']);
  const lookup = async (host: string) => (host === 'manager.example' ? ['10.96.0.8', 'fd10:96::8'] : []);
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { managerUrl: 'https://manager.example' }), lookup), ['10.96.0.8', 'fd10:96::8']);
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { managerUrl: 'https://gone.example' }), () => Promise.reject(new Error('ENOTFOUND'))), []);
});

test('through a port-forward: the kubeconfig context\'s API server', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-endpoints-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://10.96.0.1:443"}}, {name: b, cluster: {server: "https://[fd10:96::1]:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: a, user: u}}, {name: y, context: {cluster: b, user: u}}]
current-context: x
`,
  );
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { kubeconfig }), noLookup), ['10.96.0.1']);
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { kubeconfig, context: 'y' }), noLookup), ['fd10:96::1']);
  assert.deepEqual(await tunnelEndpoints(create(ConnectRequestSchema, { kubeconfig: join(dir, 'missing') }), noLookup), []);
});
