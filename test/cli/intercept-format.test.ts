// What `kubetun list` and `kubetun status` print about workloads and intercepts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { InterceptInfoSchema, WorkloadInfoSchema } from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { describeIntercept, formatIntercepts, formatWorkloads } from '../../src/cli/intercept-format.js';

const personal = create(InterceptInfoSchema, {
  id: 'i1',
  client: 'alice@laptop',
  state: 'active',
  requests: 12n,
  spec: { workload: 'echo', namespace: 'default', mode: 'personal', localPort: 8080, http: { headers: [{ name: 'x-dev', value: 'alice' }], pathPrefix: '/api' } },
  ports: [{ service: 'echo', servicePortName: 'http', servicePort: 80, containerPort: 8080, protocol: 'TCP', takeover: 'named-port' }],
});

test('list: one row per workload with why it cannot be intercepted, its ports and takeover, and who holds it', () => {
  const text = formatWorkloads([
    create(WorkloadInfoSchema, {
      name: 'echo',
      namespace: 'default',
      kind: 'Deployment',
      interceptable: true,
      agent: 'ready',
      ports: [{ service: 'echo', name: 'http', port: 80, targetPort: 'http', protocol: 'TCP', takeover: 'named-port' }],
      intercepts: [personal],
    }),
    create(WorkloadInfoSchema, { name: 'batch', namespace: 'default', kind: 'Deployment', interceptable: false, reason: 'no Service selects it' }),
  ]);
  const [header, echo, batch] = text.split('\n');
  assert.match(header!, /^NAME +NAMESPACE +KIND +INTERCEPTABLE +PORTS +AGENT +INTERCEPTED BY$/);
  assert.match(echo!, /^echo +default +Deployment +yes +echo:http→http \(named-port\) +ready +alice@laptop \(personal: x-dev=alice, path \/api\*\)$/);
  assert.match(batch!, /^batch +default +Deployment +no \(no Service selects it\) +- +none +-$/);
  assert.equal(header!.indexOf('KIND'), echo!.indexOf('Deployment'), 'columns line up');
  assert.equal(formatWorkloads([]), 'No workloads found (kubetun list -A looks in every namespace).');
});

test('status: the intercepts with mode, filter, local port, state (with a failure\'s reason) and requests', () => {
  const failed = create(InterceptInfoSchema, { id: 'i2', state: 'failed', message: 'the manager no longer has it', spec: { workload: 'cart', namespace: 'shop', mode: 'global', localPort: 9090 } });
  const lines = formatIntercepts([personal, failed]).split('\n');
  assert.equal(lines[0], 'Intercepts:');
  assert.match(lines[1]!, /^ {2}WORKLOAD +MODE +FILTER +LOCAL +STATE +REQUESTS$/);
  assert.match(lines[2]!, /^ {2}default\/echo +personal +x-dev=alice, path \/api\* +localhost:8080 +active +12$/);
  assert.match(lines[3]!, /^ {2}shop\/cart +global +all requests +localhost:9090 +failed: the manager no longer has it +0$/);
  assert.equal(formatIntercepts([]), 'Intercepts:    none');
  assert.equal(describeIntercept(personal), 'Intercepting default/echo, personal (x-dev=alice, path /api*): echo:http/TCP → localhost:8080.');
});
