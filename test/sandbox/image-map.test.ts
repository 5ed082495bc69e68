// The sandbox's image table runs the traffic manager's image as this checkout's CLI: the injected agent and
// its init container (same image, their own args) become `kubetun traffic-agent` and `kubetun agent-init`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { AGENT_ARGS, AGENT_CONTAINER, AGENT_INIT_ARGS, AGENT_INIT_CONTAINER } from '../../src/agent/agent-contract.js';
import { defaultImage } from '../../src/k8s/manager-manifests.js';
import { imageMap } from '../../src/sandbox/image-map.js';
import { parseImageTable, resolveCommand } from '../../src/sandbox/kubelet/images.js';
import { kubetunVersion } from '../../src/version.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const table = parseImageTable(JSON.stringify(imageMap('/usr/bin/node')), 'test');
const image = defaultImage(kubetunVersion());

test("the manager's image runs the CLI's traffic-manager; with the agent's args, traffic-agent; with the init container's, agent-init", () => {
  assert.deepEqual(resolveCommand({ name: 'traffic-manager', image }, table, 'test'), { ok: true, argv: ['/usr/bin/node', MAIN, 'traffic-manager'] });
  assert.deepEqual(resolveCommand({ name: AGENT_CONTAINER, image, args: [...AGENT_ARGS] }, table, 'test'), { ok: true, argv: ['/usr/bin/node', MAIN, 'traffic-agent'] });
  assert.deepEqual(resolveCommand({ name: AGENT_INIT_CONTAINER, image, args: [...AGENT_INIT_ARGS] }, table, 'test'), { ok: true, argv: ['/usr/bin/node', MAIN, 'agent-init'] });
});

test('another tag of the same image (an --agent-image with a version) resolves the same way', () => {
  const other = image.replace(/:[^:/]+$/, ':9.9.9');
  assert.notEqual(other, image);
  assert.deepEqual(resolveCommand({ name: AGENT_CONTAINER, image: other, args: ['traffic-agent'] }, table, 'test'), { ok: true, argv: ['/usr/bin/node', MAIN, 'traffic-agent'] });
});
