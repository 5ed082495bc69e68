import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Endpoints, V1Service } from '@kubernetes/client-node';
import { proxyServicesFromApi } from '../../../src/sandbox/kube-proxy/from-api.js';

function service(name: string, spec: V1Service['spec'], namespace = 'default'): V1Service {
  return { metadata: { name, namespace }, spec };
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
const webEndpoints: V1Endpoints = {
  metadata: { name: 'web', namespace: 'default' },
  subsets: [
    {
      addresses: [{ ip: '10.244.0.21' }, { ip: 'fd10:244::21' }],
      notReadyAddresses: [{ ip: '10.244.0.22' }],
      ports: [
        { name: 'metrics', port: 9100, protocol: 'TCP' },
        { name: 'http', port: 8080, protocol: 'TCP' },
      ],
    },
  ],
};

test('a named targetPort resolves through the port of the same name in Endpoints; only ready addresses count', () => {
  const [http, metrics] = proxyServicesFromApi([web], [webEndpoints], ['198.18.0.1']);
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

test('an unnamed single port matches the unnamed Endpoints port of its protocol; no Endpoints → no endpoints', () => {
  const dns = service('dns', { clusterIP: '10.96.0.10', ports: [{ port: 53, protocol: 'UDP' }] }, 'kube-system');
  const eps: V1Endpoints = {
    metadata: { name: 'dns', namespace: 'kube-system' },
    subsets: [{ addresses: [{ ip: '10.244.0.10' }], ports: [{ port: 5353, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] }],
  };
  assert.deepEqual(proxyServicesFromApi([dns], [eps], [])[0]?.endpoints, [{ address: '10.244.0.10', port: 53 }]);
  assert.deepEqual(proxyServicesFromApi([dns], [], [])[0]?.endpoints, []);
});

test("a dual-stack Service's second family comes from its EndpointSlices; not-ready slice endpoints are left out", () => {
  const web = service('web', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd10:96::14'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
  const eps: V1Endpoints = {
    metadata: { name: 'web', namespace: 'default' },
    subsets: [{ addresses: [{ ip: '10.244.0.2' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
  };
  const slice = (addressType: string, endpoints: { addresses: string[]; conditions?: { ready?: boolean } }[]): V1EndpointSlice => ({
    addressType,
    metadata: { name: `web-${addressType}`, namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  });
  const slices = [
    slice('IPv4', [{ addresses: ['10.244.0.2'], conditions: { ready: true } }]),
    slice('IPv6', [{ addresses: ['fd10:244::2'], conditions: { ready: true } }, { addresses: ['fd10:244::3'], conditions: { ready: false } }]),
  ];
  assert.deepEqual(proxyServicesFromApi([web], [eps], [], slices)[0]?.endpoints, [
    { address: '10.244.0.2', port: 8080 },
    { address: 'fd10:244::2', port: 8080 },
  ]);
  const other = { ...slices[1]!, metadata: { ...slices[1]!.metadata, labels: { 'kubernetes.io/service-name': 'other' } } };
  assert.deepEqual(proxyServicesFromApi([web], [], [], [other])[0]?.endpoints, [], "another Service's slice is not this one's");
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
  const eps: V1Endpoints = {
    metadata: { name: 'kubernetes', namespace: 'default' },
    subsets: [{ addresses: [{ ip: '198.18.0.1' }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] }],
  };
  const a = proxyServicesFromApi([web, kubernetes], [eps, webEndpoints], []);
  const b = proxyServicesFromApi([kubernetes, web], [webEndpoints, eps], []);
  assert.deepEqual(a, b);
  assert.deepEqual(a[0]?.endpoints, [{ address: '198.18.0.1', port: 6443 }]);
});
