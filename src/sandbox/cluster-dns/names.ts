// The shapes of names the cluster DNS answers, as Kubernetes' DNS specification (and CoreDNS's kubernetes
// plugin) define them under the cluster domain, plus the reverse names of IP addresses (PTR).

import { isIP } from 'node:net';
import { formatIp, parseIp } from '../../netstack/wire/ip-address.js';
import { nameEndsWith, type DnsName } from '../../dns/dns-message.js';

export type ClusterName =
  /** `cluster.local` */
  | { kind: 'apex' }
  /** `svc.cluster.local`, `pod.cluster.local` */
  | { kind: 'zone'; zone: 'svc' | 'pod' }
  /** `<ns>.svc.cluster.local` */
  | { kind: 'namespace'; zone: 'svc' | 'pod'; namespace: string }
  /** `<svc>.<ns>.svc.cluster.local` */
  | { kind: 'service'; namespace: string; service: string }
  /** `_<port>._<proto>.<svc>.<ns>.svc.cluster.local` */
  | { kind: 'srv'; namespace: string; service: string; port: string; protocol: string }
  /** `<hostname or dashed IP>.<svc>.<ns>.svc.cluster.local`: one endpoint of a headless service. */
  | { kind: 'endpoint'; namespace: string; service: string; endpoint: string }
  /** `10-244-0-11.<ns>.pod.cluster.local`; `ip` is canonical text. */
  | { kind: 'pod'; namespace: string; ip: string };

/** An IP address as one label: `10.244.0.11` → `10-244-0-11`, `fd10:244::11` → `fd10-244--11`. */
export function dashedIp(ip: string): string {
  return ip.replace(/[.:]/g, '-');
}

/** The canonical IP address a dashed label stands for, or null. */
export function parseDashedIp(label: string): string | null {
  for (const candidate of [label.replace(/-/g, '.'), label.replace(/-/g, ':')]) {
    if (isIP(candidate) !== 0) return formatIp(parseIp(candidate));
  }
  return null;
}

const lower = (label: string): string => label.toLowerCase();

/**
 * What `name` asks for under `domain` (lower-cased), or null when it is under the domain but has no meaning there
 * (an NXDOMAIN), or 'outside' when it is not under the domain at all.
 */
export function parseClusterName(name: DnsName, domain: DnsName): ClusterName | null | 'outside' {
  if (!nameEndsWith(name, domain)) return 'outside';
  const labels = name.slice(0, name.length - domain.length).map(lower);
  const n = labels.length;
  if (n === 0) return { kind: 'apex' };
  const zone = labels[n - 1];
  if (zone !== 'svc' && zone !== 'pod') return null;
  if (n === 1) return { kind: 'zone', zone };
  const namespace = labels[n - 2]!;
  if (n === 2) return { kind: 'namespace', zone, namespace };
  if (zone === 'pod') {
    const ip = n === 3 ? parseDashedIp(labels[0]!) : null;
    return ip === null ? null : { kind: 'pod', namespace, ip };
  }
  const service = labels[n - 3]!;
  if (n === 3) return { kind: 'service', namespace, service };
  if (n === 4) return { kind: 'endpoint', namespace, service, endpoint: labels[0]! };
  const [port, protocol] = labels as [string, string];
  if (n === 5 && port.length > 1 && port.startsWith('_') && protocol.length > 1 && protocol.startsWith('_')) {
    return { kind: 'srv', namespace, service, port: port.slice(1), protocol: protocol.slice(1) };
  }
  return null;
}

/** The name of `what` under `domain`: parseClusterName's inverse. */
export function clusterName(what: ClusterName, domain: DnsName): DnsName {
  switch (what.kind) {
    case 'apex':
      return [...domain];
    case 'zone':
      return [what.zone, ...domain];
    case 'namespace':
      return [what.namespace, what.zone, ...domain];
    case 'service':
      return [what.service, what.namespace, 'svc', ...domain];
    case 'srv':
      return [`_${what.port}`, `_${what.protocol}`, what.service, what.namespace, 'svc', ...domain];
    case 'endpoint':
      return [what.endpoint, what.service, what.namespace, 'svc', ...domain];
    case 'pod':
      return [dashedIp(what.ip), what.namespace, 'pod', ...domain];
  }
}

/** `10.96.0.10` → `10.0.96.10.in-addr.arpa`; IPv6 as 32 nibbles under ip6.arpa. */
export function reverseName(ip: string): DnsName {
  const bytes = parseIp(ip);
  if (bytes.length === 4) return [...[...bytes].reverse().map(String), 'in-addr', 'arpa'];
  const nibbles: string[] = [];
  for (const byte of bytes) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return [...nibbles.reverse(), 'ip6', 'arpa'];
}

/** The canonical IP address a full reverse name stands for, or null (a partial name, bad labels, another name). */
export function parseReverseName(name: DnsName): string | null {
  const labels = name.map(lower);
  const n = labels.length;
  if (n === 6 && labels[4] === 'in-addr' && labels[5] === 'arpa') {
    const octets = labels.slice(0, 4).reverse();
    if (!octets.every((o) => /^(0|[1-9]\d{0,2})$/.test(o) && Number(o) <= 255)) return null;
    return octets.join('.');
  }
  if (n === 34 && labels[32] === 'ip6' && labels[33] === 'arpa') {
    const nibbles = labels.slice(0, 32).reverse();
    if (!nibbles.every((d) => /^[0-9a-f]$/.test(d))) return null;
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(nibbles.slice(i, i + 4).join(''));
    return formatIp(parseIp(groups.join(':')));
  }
  return null;
}
