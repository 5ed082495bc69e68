// The cluster DNS server and the cluster domain, found rather than assumed: the server is the ClusterIP of the
// kube-dns Service (CoreDNS keeps that name for compatibility); the domain comes from the search list the kubelet
// writes into the manager pod's resolv.conf (`<ns>.svc.<domain> svc.<domain> <domain>`), or from the name the
// cluster DNS gives the `kubernetes` Service's ClusterIP (kubernetes.default.svc.<domain>).
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { V1Service } from '@kubernetes/client-node';
import { parseResolvConf } from '../../dns/resolv-conf.js';
import type { DnsServerAddress } from '../cluster-info-source.js';

/** The kube-dns Service's ClusterIP and its DNS port (the UDP port named "dns", else any UDP port, else 53). */
export function dnsFromKubeDnsService(service: V1Service | undefined): DnsServerAddress | undefined {
  const ip = service?.spec?.clusterIP;
  if (ip === undefined || isIP(ip) === 0) return undefined;
  const ports = service?.spec?.ports ?? [];
  const udp = ports.filter((p) => (p.protocol ?? 'TCP') === 'UDP');
  const port = udp.find((p) => p.name === 'dns') ?? udp[0];
  return { ip, port: port?.port ?? 53 };
}

/** The first nameserver of a resolv.conf that is an IP address, port 53. */
export function dnsFromResolvConf(text: string): DnsServerAddress | undefined {
  const ip = parseResolvConf(text).nameservers.find((server) => isIP(server) !== 0);
  return ip === undefined ? undefined : { ip, port: 53 };
}

/** The cluster domain from a pod's search list: `<namespace>.svc.<domain>` first, else any `svc.<domain>`. */
export function clusterDomainFromResolvConf(text: string, namespace: string | undefined): string | undefined {
  const search = parseResolvConf(text).search.map((s) => s.replace(/\.$/, '').toLowerCase());
  if (namespace !== undefined) {
    const prefix = `${namespace.toLowerCase()}.svc.`;
    const own = search.find((s) => s.startsWith(prefix) && s.length > prefix.length);
    if (own !== undefined) return own.slice(prefix.length);
  }
  const svc = search.find((s) => s.startsWith('svc.') && s.length > 4);
  return svc?.slice(4);
}

/** The domain in a reverse lookup answer for the kubernetes Service: `kubernetes.default.svc.<domain>`. */
export function clusterDomainFromServiceName(names: readonly string[]): string | undefined {
  for (const name of names) {
    const match = /^kubernetes\.default\.svc\.(.+?)\.?$/i.exec(name);
    if (match) return match[1]!.toLowerCase();
  }
  return undefined;
}

/** Asks the cluster DNS server for the name of the kubernetes Service's ClusterIP; undefined when it cannot say. */
export async function clusterDomainByReverseLookup(dns: DnsServerAddress, kubernetesClusterIp: string, timeoutMs = 2000): Promise<string | undefined> {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers([isIP(dns.ip) === 6 ? `[${dns.ip}]:${dns.port}` : `${dns.ip}:${dns.port}`]);
  try {
    return clusterDomainFromServiceName(await resolver.reverse(kubernetesClusterIp));
  } catch {
    return undefined;
  } finally {
    resolver.cancel();
  }
}
