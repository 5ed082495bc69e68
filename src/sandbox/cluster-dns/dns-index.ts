// The cluster DNS's view of the cluster, rebuilt from the API's lists on each change, and the answers it gives
// from it: no API call per query. Records follow Kubernetes' DNS specification (as CoreDNS's kubernetes plugin
// serves it): services (ClusterIPs, or a headless service's ready endpoints), SRV for named ports, ExternalName
// as CNAME, pods by dashed IP (verified: the pod must exist in that namespace) and PTR for all of those IPs.

import { isIP } from 'node:net';
import type { V1Endpoints, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { DnsRcode, DnsType, nameBytes, textToName, type DnsName, type DnsQuestion, type DnsRecord } from '../../dns/dns-message.js';
import { parseIp, formatIp } from '../../netstack/wire/ip-address.js';
import { clusterName, dashedIp, parseClusterName, parseDashedIp, parseReverseName, type ClusterName } from './names.js';

/** TTL of every record, as CoreDNS's kubernetes plugin gives by default. */
export const DNS_TTL_S = 30;
const CLASS_IN = 1;

interface PortEntry {
  /** Lower-case, '' when unnamed. */
  name: string;
  /** Lower-case: tcp, udp, sctp. */
  protocol: string;
  port: number;
}

interface EndpointEntry {
  ip: string;
  /** hostname, or the dashed IP. */
  label: string;
  ports: PortEntry[];
}

interface ServiceEntry {
  clusterIPs: string[];
  externalName?: DnsName;
  headless: boolean;
  ports: PortEntry[];
  /** Ready endpoints. */
  endpoints: EndpointEntry[];
}

export interface DnsIndex {
  domain: DnsName;
  namespaces: Set<string>;
  /** `<namespace>/<name>` */
  services: Map<string, ServiceEntry>;
  /** `<namespace>/<canonical ip>` */
  pods: Set<string>;
  /** canonical IP → the name(s) a PTR query gets. */
  ptr: Map<string, DnsName[]>;
}

export interface ClusterState {
  services: readonly V1Service[];
  endpoints: readonly V1Endpoints[];
  pods: readonly V1Pod[];
  namespaces: readonly V1Namespace[];
}

function canonical(ip: string): string | null {
  return isIP(ip) === 0 ? null : formatIp(parseIp(ip));
}

function addPtr(index: DnsIndex, ip: string, name: DnsName): void {
  const list = index.ptr.get(ip) ?? [];
  if (!list.some((n) => n.join('.') === name.join('.'))) list.push(name);
  index.ptr.set(ip, list);
}

export function buildDnsIndex(domain: string, state: ClusterState): DnsIndex {
  const index: DnsIndex = { domain: textToName(domain.toLowerCase()), namespaces: new Set(), services: new Map(), pods: new Set(), ptr: new Map() };
  for (const ns of state.namespaces) if (ns.metadata?.name) index.namespaces.add(ns.metadata.name);
  const endpointsByKey = new Map(state.endpoints.map((e) => [`${e.metadata?.namespace}/${e.metadata?.name}`, e]));
  for (const svc of state.services) {
    const namespace = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name;
    if (name === undefined) continue;
    index.namespaces.add(namespace);
    const spec = svc.spec ?? {};
    const clusterIPs = [...new Set([...(spec.clusterIPs ?? []), spec.clusterIP ?? ''].map((ip) => canonical(ip)).filter((ip) => ip !== null))];
    const entry: ServiceEntry = {
      clusterIPs,
      headless: spec.clusterIP === 'None',
      ports: (spec.ports ?? []).map((p) => ({ name: (p.name ?? '').toLowerCase(), protocol: (p.protocol ?? 'TCP').toLowerCase(), port: p.port })),
      endpoints: [],
    };
    if (spec.type === 'ExternalName' && spec.externalName) entry.externalName = textToName(spec.externalName);
    if (entry.headless) {
      for (const subset of endpointsByKey.get(`${namespace}/${name}`)?.subsets ?? []) {
        const ports = (subset.ports ?? []).map((p) => ({ name: (p.name ?? '').toLowerCase(), protocol: (p.protocol ?? 'TCP').toLowerCase(), port: p.port }));
        for (const address of subset.addresses ?? []) {
          const ip = canonical(address.ip);
          if (ip === null) continue;
          entry.endpoints.push({ ip, label: (address.hostname ?? dashedIp(ip)).toLowerCase(), ports });
        }
      }
    }
    index.services.set(`${namespace}/${name}`, entry);
    const service = clusterName({ kind: 'service', namespace, service: name }, index.domain);
    for (const ip of clusterIPs) addPtr(index, ip, service);
    for (const ep of entry.endpoints) addPtr(index, ep.ip, clusterName({ kind: 'endpoint', namespace, service: name, endpoint: ep.label }, index.domain));
  }
  for (const pod of state.pods) {
    const namespace = pod.metadata?.namespace ?? 'default';
    const ips = [...(pod.status?.podIPs ?? []).map((p) => p.ip), pod.status?.podIP ?? ''];
    for (const ip of new Set(ips.map((i) => canonical(i)).filter((i) => i !== null))) {
      index.pods.add(`${namespace}/${ip}`);
      // A host-network pod has the node's address: that is not the pod's name. Services and endpoints named first.
      if (pod.spec?.hostNetwork !== true && !index.ptr.has(ip)) addPtr(index, ip, clusterName({ kind: 'pod', namespace, ip }, index.domain));
    }
  }
  return index;
}

function record(name: DnsName, type: number, data: Buffer): DnsRecord {
  return { name, type, class: CLASS_IN, ttl: DNS_TTL_S, data };
}

function addressRecords(name: DnsName, ips: readonly string[], type: number): DnsRecord[] {
  const want = type === DnsType.A ? 4 : 16;
  return ips
    .map((ip) => parseIp(ip))
    .filter((bytes) => bytes.length === want)
    .map((bytes) => record(name, type, Buffer.from(bytes)));
}

function srvData(port: number, weight: number, target: DnsName): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt16BE(0, 0);
  head.writeUInt16BE(weight, 2);
  head.writeUInt16BE(port, 4);
  return Buffer.concat([head, nameBytes(target)]);
}

/** The zone's SOA, as CoreDNS's kubernetes plugin writes it (negative answers are cached for the TTL). */
export function soaRecord(domain: DnsName): DnsRecord {
  const times = Buffer.alloc(20);
  times.writeUInt32BE(Math.floor(Date.now() / 1000) >>> 0, 0); // serial
  times.writeUInt32BE(7200, 4); // refresh
  times.writeUInt32BE(1800, 8); // retry
  times.writeUInt32BE(86400, 12); // expire
  times.writeUInt32BE(DNS_TTL_S, 16); // minimum
  return record(domain, DnsType.SOA, Buffer.concat([nameBytes(['ns', 'dns', ...domain]), nameBytes(['hostmaster', ...domain]), times]));
}

export interface LocalAnswer {
  rcode: number;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
  /** An ExternalName's target outside the cluster: the server asks upstream for it and appends the answer. */
  chase?: DnsQuestion;
}

function positive(answers: DnsRecord[], additionals: DnsRecord[] = []): LocalAnswer {
  return { rcode: DnsRcode.NOERROR, answers, authorities: [], additionals };
}

/** Does the name exist (NODATA rather than NXDOMAIN when it has no record of the type asked)? */
function exists(index: DnsIndex, what: ClusterName): boolean {
  switch (what.kind) {
    case 'apex':
    case 'zone':
      return true;
    case 'namespace':
      return index.namespaces.has(what.namespace);
    case 'service':
      return index.services.has(`${what.namespace}/${what.service}`);
    case 'endpoint':
      return findEndpoint(index, what) !== undefined;
    case 'srv':
      return srvTargets(index, what).length > 0;
    case 'pod':
      return index.pods.has(`${what.namespace}/${what.ip}`);
  }
}

function findEndpoint(index: DnsIndex, what: { namespace: string; service: string; endpoint: string }): EndpointEntry | undefined {
  const entry = index.services.get(`${what.namespace}/${what.service}`);
  const ip = parseDashedIp(what.endpoint);
  return entry?.endpoints.find((ep) => ep.label === what.endpoint || ep.ip === ip);
}

interface SrvTarget {
  port: number;
  target: DnsName;
  ips: string[];
}

function srvTargets(index: DnsIndex, what: Extract<ClusterName, { kind: 'srv' }>): SrvTarget[] {
  const entry = index.services.get(`${what.namespace}/${what.service}`);
  if (entry === undefined || what.port === '') return [];
  const matches = (p: PortEntry): boolean => p.name === what.port && p.protocol === what.protocol;
  if (!entry.headless) {
    const port = entry.ports.find(matches);
    if (port === undefined || entry.clusterIPs.length === 0) return [];
    return [{ port: port.port, target: clusterName({ kind: 'service', namespace: what.namespace, service: what.service }, index.domain), ips: entry.clusterIPs }];
  }
  return entry.endpoints.flatMap((ep) => {
    const port = ep.ports.find(matches);
    if (port === undefined) return [];
    const target = clusterName({ kind: 'endpoint', namespace: what.namespace, service: what.service, endpoint: ep.label }, index.domain);
    return [{ port: port.port, target, ips: [ep.ip] }];
  });
}

/** Records of `type` for the existing name `what` (owner: the name as asked). */
function recordsFor(index: DnsIndex, what: ClusterName, owner: DnsName, type: number): LocalAnswer | null {
  const wantsAddress = type === DnsType.A || type === DnsType.AAAA;
  switch (what.kind) {
    case 'apex':
      return type === DnsType.SOA ? positive([soaRecord(index.domain)]) : null;
    case 'service': {
      const entry = index.services.get(`${what.namespace}/${what.service}`)!;
      if (entry.externalName !== undefined) {
        const cname = record(owner, DnsType.CNAME, nameBytes(entry.externalName));
        if (type === DnsType.CNAME) return positive([cname]);
        return { ...positive([cname]), chase: { name: entry.externalName, type, class: CLASS_IN } };
      }
      const ips = entry.headless ? entry.endpoints.map((ep) => ep.ip) : entry.clusterIPs;
      return wantsAddress ? positive(addressRecords(owner, ips, type)) : null;
    }
    case 'endpoint': {
      const ep = findEndpoint(index, what)!;
      return wantsAddress ? positive(addressRecords(owner, [ep.ip], type)) : null;
    }
    case 'pod':
      return wantsAddress ? positive(addressRecords(owner, [what.ip], type)) : null;
    case 'srv': {
      if (type !== DnsType.SRV) return null;
      const targets = srvTargets(index, what);
      const weight = Math.max(1, Math.floor(100 / targets.length));
      return positive(
        targets.map((t) => record(owner, DnsType.SRV, srvData(t.port, weight, t.target))),
        targets.flatMap((t) => [...addressRecords(t.target, t.ips, DnsType.A), ...addressRecords(t.target, t.ips, DnsType.AAAA)]),
      );
    }
    default:
      return null;
  }
}

/**
 * The answer to one question from the index, or null when it is not the cluster DNS's to answer (a name outside
 * the cluster domain, or a reverse name of an IP it does not know): the server forwards those upstream.
 */
export function answerQuestion(index: DnsIndex, question: DnsQuestion): LocalAnswer | null {
  const parsed = parseClusterName(question.name, index.domain);
  if (parsed === 'outside') {
    const ip = question.type === DnsType.PTR ? parseReverseName(question.name) : null;
    const names = ip === null ? undefined : index.ptr.get(ip);
    return names === undefined ? null : positive(names.map((n) => record(question.name, DnsType.PTR, nameBytes(n))));
  }
  const negative = (rcode: number): LocalAnswer => ({ rcode, answers: [], authorities: [soaRecord(index.domain)], additionals: [] });
  if (parsed === null || !exists(index, parsed)) return negative(DnsRcode.NXDOMAIN);
  const found = recordsFor(index, parsed, question.name, question.type);
  return found === null || found.answers.length === 0 ? negative(DnsRcode.NOERROR) : found;
}
