// The patch uninstall sends to take the agent out of a workload's pod template (applied for real against an API
// server in agent-injector-install.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentRemovalPatch } from '../../src/k8s/agent-rollback.js';

test('the patch removes the agent label and every kubetun.io/ annotation, escaped, and nothing else', () => {
  const patch = agentRemovalPatch({
    metadata: {
      labels: { app: 'echo', 'kubetun.io/agent': 'enabled' },
      annotations: { 'kubetun.io/agent-ports': '[]', 'kubetun.io/agent-container': 'echo', 'kubetun.io/replace': 'alice', 'example.com/keep': 'x' },
    },
  });
  assert.deepEqual(patch, [
    { op: 'remove', path: '/spec/template/metadata/labels/kubetun.io~1agent' },
    { op: 'remove', path: '/spec/template/metadata/annotations/kubetun.io~1agent-ports' },
    { op: 'remove', path: '/spec/template/metadata/annotations/kubetun.io~1agent-container' },
    { op: 'remove', path: '/spec/template/metadata/annotations/kubetun.io~1replace' },
  ]);
  assert.deepEqual(agentRemovalPatch({ metadata: { labels: { app: 'echo' } } }), [], 'nothing to remove: no operation that would fail');
  assert.deepEqual(agentRemovalPatch(undefined), []);
});
