import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { clusterIPsFromApi, proxyServicesFromApi } from '../../../src/sandbox/kube-proxy/from-api.js';

function service(name: string, spec: V1Service['spec'], namespace = 'default'): V1Service {
  return { metadata: { name, namespace }, spec };
}

type SliceEndpoint = { addresses: string[]; conditions?: { ready?: boolean } };

/** An EndpointSlice of Service `name`, as the controller-manager makes (or mirrors from hand-made Endpoints). */
function slice(name: string, addressType: string, ports: V1EndpointSlice['ports'], endpoints: SliceEndpoint[], namespace = 'default'): V1EndpointSlice {
  return { addressType, metadata: { name: `${name}-${addressType}`, namespace, labels: { 'kubernetes.io/service-name': name } }, ports, endpoints };
}

const web = service('web', {
  type: 'NodePort',
  clusterIP: '10.96.0.40',
  clusterIPs: ['10.96.0.40', 'fd10:96::28'],
  ports: [
    { name: 'http', port: 80, targetPort: 'web' as never, protocol: 'TCP', nodePort: 30080 },
    { name: 'metrics', port: 9090, protocol: 'TCP' },
  ],
});
const webPorts = [
  { name: 'metrics', port: 9100, protocol: 'TCP' },
  { name: 'http', port: 8080, protocol: 'TCP' },
];
const webSlices = [
  slice('web', 'IPv4', webPorts, [{ addresses: ['10.244.0.21'], conditions: { ready: true } }, { addresses: ['10.244.0.22'], conditions: { ready: false } }]),
  slice('web', 'IPv6', webPorts, [{ addresses: ['fd10:244::21'], conditions: { ready: true } }]),
];

test('a named targetPort resolves through the port of the same name in the slices; only ready addresses count', () => {
  const [http, metrics] = proxyServicesFromApi([web], webSlices, ['198.18.0.1']);
  assert.deepEqual(http, {
    name: 'svc.default.web.tcp.80',
    protocol: 'tcp',
    frontends: [
      { address: '10.96.0.40', port: 80 },
      { address: 'fd10:96::28', port: 80 },
      { address: '198.18.0.1', port: 30080 },
    ],
    endpoints: [
      { address: '10.244.0.21', port: 8080 },
      { address: 'fd10:244::21', port: 8080 },
    ],
  });
  assert.deepEqual(metrics?.endpoints, [
    { address: '10.244.0.21', port: 9100 },
    { address: 'fd10:244::21', port: 9100 },
  ]);
  assert.deepEqual(metrics?.frontends, [
    { address: '10.96.0.40', port: 9090 },
    { address: 'fd10:96::28', port: 9090 },
  ]);
});

test('an unnamed single port matches the unnamed slice port of its protocol; no slices → no endpoints', () => {
  const dns = service('dns', { clusterIP: '10.96.0.10', ports: [{ port: 53, protocol: 'UDP' }] }, 'kube-system');
  const eps = slice('dns', 'IPv4', [{ port: 5353, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], [{ addresses: ['10.244.0.10'] }], 'kube-system');
  assert.deepEqual(proxyServicesFromApi([dns], [eps], [])[0]?.endpoints, [{ address: '10.244.0.10', port: 53 }]);
  assert.deepEqual(proxyServicesFromApi([dns], [], [])[0]?.endpoints, []);
});

test("a dual-stack Service's endpoints come from its slice of each family; not-ready ones and other Services' are left out", () => {
  const web = service('web', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd10:96::14'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
  const ports = [{ name: 'http', port: 8080, protocol: 'TCP' }];
  const slices = [
    slice('web', 'IPv4', ports, [{ addresses: ['10.244.0.2'], conditions: { ready: true } }]),
    slice('web', 'IPv6', ports, [{ addresses: ['fd10:244::2'], conditions: { ready: true } }, { addresses: ['fd10:244::3'], conditions: { ready: false } }]),
  ];
  assert.deepEqual(proxyServicesFromApi([web], slices, [])[0]?.endpoints, [
    { address: '10.244.0.2', port: 8080 },
    { address: 'fd10:244::2', port: 8080 },
  ]);
  const other = { ...slices[1]!, metadata: { ...slices[1]!.metadata, labels: { 'kubernetes.io/service-name': 'other' } } };
  assert.deepEqual(proxyServicesFromApi([web], [other], [])[0]?.endpoints, [], "another Service's slice is not this one's");
});

test('headless, ExternalName and not-yet-allocated services get no frontends', () => {
  const out = proxyServicesFromApi(
    [
      service('headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
      service('external', { type: 'ExternalName', externalName: 'example.com', ports: [{ port: 80 }] }),
      service('pending', { clusterIP: '', ports: [{ port: 80 }] }),
    ],
    [],
    ['198.18.0.1'],
  );
  assert.deepEqual(out, []);
});

test('the kubernetes Service leads to the API server address, sorted output is stable', () => {
  const kubernetes = service('kubernetes', { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 as never }] });
  const eps = slice('kubernetes', 'IPv4', [{ name: 'https', port: 6443, protocol: 'TCP' }], [{ addresses: ['198.18.0.1'] }]);
  const a = proxyServicesFromApi([web, kubernetes], [eps, ...webSlices], []);
  const b = proxyServicesFromApi([kubernetes, web], [...webSlices, eps], []);
  assert.deepEqual(a, b);
  assert.deepEqual(a[0]?.endpoints, [{ address: '198.18.0.1', port: 6443 }]);
});

test("the ClusterIPs are every Service's allocated ones, both families, once each, whatever the order", () => {
  const dns = service('dns', { clusterIP: '10.96.0.10', ports: [{ port: 53, protocol: 'UDP' }] }, 'kube-system');
  const headless = service('headless', { clusterIP: 'None', ports: [{ port: 80 }] });
  const pending = service('pending', { clusterIP: '', ports: [{ port: 80 }] });
  const expected = ['10.96.0.10', '10.96.0.40', 'fd10:96::28'];
  assert.deepEqual(clusterIPsFromApi([web, dns, headless, pending]), expected);
  assert.deepEqual(clusterIPsFromApi([pending, dns, web, headless]), expected);
});
