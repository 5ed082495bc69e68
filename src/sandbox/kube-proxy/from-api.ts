// Services and EndpointSlices as the API serves them → the renderer's plain data, with kube-proxy's semantics:
// ClusterIP frontends from spec.clusterIPs (and spec.clusterIP), NodePort frontends on the node's addresses, and
// endpoint ports matched to a service port by the service port's name (the EndpointSlice controller names them so,
// after resolving named targetPorts against the pods' container ports). Slices, not Endpoints: a dual-stack
// Service's Endpoints object holds its first family only. Hand-made Endpoints of selector-less Services are
// mirrored into slices by the controller-manager.

import { isIP } from 'node:net';
import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { L4Protocol, ProxyAddressPort, ProxyService } from './ruleset.js';

function l4(protocol: string | undefined): L4Protocol | null {
  switch (protocol ?? 'TCP') {
    case 'TCP':
      return 'tcp';
    case 'UDP':
      return 'udp';
    case 'SCTP':
      return 'sctp';
    default:
      return null;
  }
}

function clusterIPs(service: V1Service): string[] {
  const spec = service.spec;
  const all = [...(spec?.clusterIPs ?? []), ...(spec?.clusterIP === undefined ? [] : [spec.clusterIP])];
  // "None" (headless) and "" (not yet allocated) are not addresses.
  return [...new Set(all.filter((ip) => isIP(ip) !== 0))];
}

/** The ready addresses of a Service's EndpointSlices with the port named like `servicePort`, of its protocol. */
function readyEndpoints(slices: readonly V1EndpointSlice[], servicePort: V1ServicePort): ProxyAddressPort[] {
  const out: ProxyAddressPort[] = [];
  for (const slice of slices) {
    const port = (slice.ports ?? []).find(
      (p) => (p.name ?? '') === (servicePort.name ?? '') && (p.protocol ?? 'TCP') === (servicePort.protocol ?? 'TCP'),
    );
    if (port?.port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      // An unknown readiness counts as ready, as the API documents.
      if (endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses ?? []) if (isIP(address) !== 0) out.push({ address, port: port.port });
    }
  }
  return out;
}

/**
 * Every ClusterIP allocated to a Service, both families, sorted (the informer's order must not change the
 * ruleset): the renderer refuses the ports their Services do not define.
 */
export function clusterIPsFromApi(services: readonly V1Service[]): string[] {
  return [...new Set(services.filter((s) => s.spec?.type !== 'ExternalName').flatMap(clusterIPs))].sort();
}

/**
 * One ProxyService per service port of every proxied Service (not ExternalName, not headless), in a stable order.
 * `nodeAddresses` are where NodePorts listen.
 */
export function proxyServicesFromApi(
  services: readonly V1Service[],
  slices: readonly V1EndpointSlice[],
  nodeAddresses: readonly string[],
): ProxyService[] {
  const slicesByKey = new Map<string, V1EndpointSlice[]>();
  for (const slice of slices) {
    const key = `${slice.metadata?.namespace}/${slice.metadata?.labels?.['kubernetes.io/service-name']}`;
    slicesByKey.set(key, [...(slicesByKey.get(key) ?? []), slice]);
  }
  const sorted = [...services].sort((a, b) =>
    `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`),
  );
  const out: ProxyService[] = [];
  for (const service of sorted) {
    if (service.spec?.type === 'ExternalName') continue;
    const ips = clusterIPs(service);
    if (ips.length === 0) continue;
    const namespace = service.metadata?.namespace ?? 'default';
    const name = service.metadata?.name ?? '';
    const serviceSlices = slicesByKey.get(`${namespace}/${name}`) ?? [];
    for (const port of service.spec?.ports ?? []) {
      const protocol = l4(port.protocol);
      if (protocol === null) continue;
      const frontends = ips.map((address) => ({ address, port: port.port }));
      if (port.nodePort !== undefined && port.nodePort > 0) {
        frontends.push(...nodeAddresses.map((address) => ({ address, port: port.nodePort! })));
      }
      // Dots cannot occur in namespace or service names, so the chain names of two services never collide.
      out.push({ name: `svc.${namespace}.${name}.${protocol}.${port.port}`, protocol, frontends, endpoints: readyEndpoints(serviceSlices, port) });
    }
  }
  return out;
}
