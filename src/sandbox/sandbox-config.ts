// The sandbox cluster's fixed topology: namespace names, links, addresses, nodes, and the workloads and services
// applied through its API. A pure function of the sandbox's name, so every part of kubetun (and every test)
// derives the same facts from it. Pods and their addresses are the kubelets' business, read from the API.

import { serverUrl } from './control-plane/command-lines.js';
import type { EnvFromSource, EnvVar } from './kubelet/types.js';
import { SandboxError } from './sandbox-errors.js';

export const DEFAULT_SANDBOX_NAME = 'kt';
export const SANDBOX_STATE_ROOT = '/run/kubetun-sandbox';

export type Protocol = 'TCP' | 'UDP';

export interface DualStackAddress {
  ipv4: string;
  ipv6: string;
}

/** A node of the sandbox cluster: a kubelet of ours in the node namespace, with its own pod CIDRs. */
export interface SandboxNode {
  /** The Node object's name. */
  name: string;
  /** spec.podCIDRs: one IPv4 and one IPv6 prefix. */
  podCidrs: readonly string[];
  /** The kubelet's API port (port-forward) on the node's address; each node of the namespace has its own. */
  kubeletPort: number;
}

export interface SandboxServicePort {
  /** Kubernetes port name; only named ports get SRV records. */
  name?: string;
  port: number;
  /** A container port's number, or its name (the container port of that name in each pod). */
  targetPort: number | string;
  protocol: Protocol;
}

/** A Deployment the sandbox applies through the API; its pods are labelled app=<name>. */
export interface SandboxDeployment {
  name: string;
  namespace: string;
  image: string;
  /** The container's args (its command is the image's entrypoint, see image-map.ts). */
  args: readonly string[];
  replicas: number;
  /** The container port a TCP readiness probe checks. */
  readinessPort: number;
  /** The name of that container port, when Services refer to it by name. */
  portName?: string;
  /** Variables beyond the downward API's POD_NAME, POD_NAMESPACE and POD_IP, and whole ConfigMaps or Secrets. */
  env?: readonly EnvVar[];
  envFrom?: readonly EnvFromSource[];
  /** ClusterFirst by default; the cluster DNS itself resolves through the node's resolver (Default). */
  dnsPolicy: 'ClusterFirst' | 'Default';
  /** A ServiceAccount of its own (with the cluster DNS's read rights), or the namespace's default one. */
  serviceAccount?: string;
}

export interface SandboxService {
  name: string;
  namespace: string;
  /** `<name>.<namespace>.svc.<cluster domain>` */
  fqdn: string;
  /** Fixed, so that tests and the demo can name them. */
  clusterIPs: DualStackAddress;
  ports: readonly SandboxServicePort[];
  /** The pods behind it: those of this Deployment. */
  deployment: string;
}

/** A ConfigMap or Secret the sandbox creates, with its (plain-text) data. */
export interface SandboxDataObject {
  kind: 'ConfigMap' | 'Secret';
  name: string;
  namespace: string;
  data: Readonly<Record<string, string>>;
}

export interface SandboxConfig {
  name: string;
  /** Pids, logs, kubeconfigs, the control plane's data and generated configuration of this sandbox. */
  stateDir: string;
  clusterDomain: string;
  namespaces: { workstation: string; node: string };
  /** The kubelets name each pod's network namespace this prefix plus the pod's name. */
  podNetnsPrefix: string;
  /** The veth pair joining workstation and node. */
  link: {
    nodeInterface: string;
    workstationInterface: string;
    node: DualStackAddress;
    workstation: DualStackAddress;
    ipv4PrefixLength: number;
    ipv6PrefixLength: number;
    cidrs: readonly string[];
  };
  /** The node namespace's pod bridge; each kubelet adds its pod CIDRs' gateway addresses to it. */
  bridge: { name: string };
  /** The API server, in the node namespace on the node's link address (the workstation reaches it there). */
  controlPlane: { address: string; port: number; server: string; serviceClusterIpRange: string; stateDir: string };
  /** An admin kubeconfig for the workstation (KUBECONFIG of `sandbox exec`). */
  workstationKubeconfig: string;
  nodes: readonly SandboxNode[];
  /** Every pod CIDR the sandbox may use (nodes added later included), for the host-route overlap check. */
  podCidrs: readonly string[];
  serviceCidrs: readonly string[];
  /** The kube-dns Service's ClusterIPs. */
  clusterDns: DualStackAddress;
  /** The resolver the workstation's own resolv.conf names (on the node's link addresses). */
  upstreamDns: {
    addresses: DualStackAddress;
    domain: string;
    records: readonly { name: string; ipv4: string; ipv6: string }[];
  };
  /**
   * Where `kubetun install` puts the traffic manager, and its TLS NodePort for `--manager-url` clients (manager-tls.ts):
   * `kubetun install --tls-secret <tlsSecret>`, then `connect --manager-url <url> --manager-ca <caFile>` with a
   * kubeconfig user's token that may port-forward to the manager.
   */
  manager: {
    namespace: string;
    service: string;
    port: number;
    tlsSecret: string;
    nodePort: number;
    url: string;
    ipv6Url: string;
    caFile: string;
  };
  deployments: readonly SandboxDeployment[];
  services: readonly SandboxService[];
  /** ConfigMaps and Secrets the workloads' environment reads (created before the Deployments). */
  dataObjects: readonly SandboxDataObject[];
  /** Environment for commands run in the workstation (`kubetun sandbox exec`). */
  workstationEnv: Readonly<Record<string, string>>;
}

interface ServiceSpec {
  name: string;
  namespace: string;
  deployment: string;
  /** Last octet of the IPv4 ClusterIP in 10.96.0.0/24; the IPv6 one is fd10:96::<same number in hex>. */
  host: number;
  ports: SandboxServicePort[];
}

const CLUSTER_DOMAIN = 'cluster.local';
const MANAGER_PORT = 8081;
const MANAGER_NODE_PORT = 30443;
const API_PORT = 6443;

/** Images of the sandbox's workloads: image-map.ts says what each runs. */
export const SANDBOX_IMAGES = {
  echo: 'kubetun/echo-server:1',
  clusterDns: 'kubetun/cluster-dns:1',
  redis: 'redis:7',
  iperf: 'networkstatic/iperf3:latest',
} as const;

const DEPLOYMENTS: readonly SandboxDeployment[] = [
  {
    name: 'coredns',
    namespace: 'kube-system',
    image: SANDBOX_IMAGES.clusterDns,
    args: [],
    replicas: 1,
    readinessPort: 53,
    dnsPolicy: 'Default',
    serviceAccount: 'coredns',
  },
  // The echo server takes the pod's name and namespace from POD_NAME and POD_NAMESPACE (the downward API). Its
  // environment from a ConfigMap and a Secret is what `kubetun intercept --env-file` must reproduce; its named port
  // is what the agent takes over by name (the echo Service's targetPort).
  {
    name: 'echo',
    namespace: 'default',
    image: SANDBOX_IMAGES.echo,
    args: ['--port', '80'],
    replicas: 2,
    readinessPort: 80,
    portName: 'http',
    dnsPolicy: 'ClusterFirst',
    env: [
      { name: 'GREETING', value: 'hello' },
      { name: 'ECHO_COLOR', valueFrom: { configMapKeyRef: { name: 'echo-config', key: 'color' } } },
      { name: 'ECHO_TOKEN', valueFrom: { secretKeyRef: { name: 'echo-secret', key: 'token' } } },
    ],
    envFrom: [{ configMapRef: { name: 'echo-config' }, prefix: 'CFG_' }],
  },
  // The same server behind a numeric targetPort: the agent takes that over with the init container's nftables.
  { name: 'hello', namespace: 'default', image: SANDBOX_IMAGES.echo, args: ['--port', '80'], replicas: 1, readinessPort: 80, dnsPolicy: 'ClusterFirst' },
  {
    name: 'redis',
    namespace: 'default',
    image: SANDBOX_IMAGES.redis,
    args: ['--port', '6379', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', '/tmp'],
    replicas: 1,
    readinessPort: 6379,
    dnsPolicy: 'ClusterFirst',
  },
  {
    name: 'iperf',
    namespace: 'default',
    image: SANDBOX_IMAGES.iperf,
    // --idle-timeout: a client that vanished mid-test (no results sent) would otherwise leave it busy for good.
    args: ['--server', '--port', '5201', '--forceflush', '--idle-timeout', '30'],
    replicas: 1,
    readinessPort: 5201,
    dnsPolicy: 'ClusterFirst',
  },
  { name: 'orders', namespace: 'shop', image: SANDBOX_IMAGES.echo, args: ['--port', '80'], replicas: 1, readinessPort: 80, dnsPolicy: 'ClusterFirst' },
];

const SERVICES: readonly ServiceSpec[] = [
  {
    name: 'kube-dns',
    namespace: 'kube-system',
    deployment: 'coredns',
    host: 10,
    ports: [
      { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
    ],
  },
  { name: 'echo', namespace: 'default', deployment: 'echo', host: 20, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  { name: 'redis', namespace: 'default', deployment: 'redis', host: 21, ports: [{ name: 'redis', port: 6379, targetPort: 6379, protocol: 'TCP' }] },
  {
    name: 'iperf',
    namespace: 'default',
    deployment: 'iperf',
    host: 22,
    // iperf3's UDP tests send their datagrams to the same port as the TCP control connection.
    ports: [
      { name: 'iperf', port: 5201, targetPort: 5201, protocol: 'TCP' },
      { name: 'iperf-udp', port: 5201, targetPort: 5201, protocol: 'UDP' },
    ],
  },
  { name: 'hello', namespace: 'default', deployment: 'hello', host: 23, ports: [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }] },
  { name: 'orders', namespace: 'shop', deployment: 'orders', host: 30, ports: [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }] },
];

const DATA_OBJECTS: readonly SandboxDataObject[] = [
  { kind: 'ConfigMap', name: 'echo-config', namespace: 'default', data: { color: 'blue' } },
  { kind: 'Secret', name: 'echo-secret', namespace: 'default', data: { token: 's3cret-token' } },
];

const NAME_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/** Throws SandboxError BAD_NAME unless `name` can prefix the sandbox's namespace names. */
export function checkSandboxName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new SandboxError(
      'BAD_NAME',
      `"${name}" is not a usable sandbox name: use 1 to 16 lower-case letters and digits, starting with a letter (e.g. kt)`,
    );
  }
  return name;
}

export function sandboxConfig(name: string = DEFAULT_SANDBOX_NAME): SandboxConfig {
  checkSandboxName(name);
  const stateDir = `${SANDBOX_STATE_ROOT}/${name}`;
  const services: SandboxService[] = SERVICES.map((spec) => ({
    name: spec.name,
    namespace: spec.namespace,
    fqdn: `${spec.name}.${spec.namespace}.svc.${CLUSTER_DOMAIN}`,
    clusterIPs: { ipv4: `10.96.0.${spec.host}`, ipv6: `fd10:96::${spec.host.toString(16)}` },
    ports: spec.ports,
    deployment: spec.deployment,
  }));
  const node = { ipv4: '198.18.0.1', ipv6: '2001:2::1' };
  const managerUrl = `https://${node.ipv4}:${MANAGER_NODE_PORT}`;
  const workstationKubeconfig = `${stateDir}/workstation.kubeconfig`;
  const serviceCidrs = ['10.96.0.0/16', 'fd10:96::/112'];
  return {
    name,
    stateDir,
    clusterDomain: CLUSTER_DOMAIN,
    namespaces: { workstation: `${name}-workstation`, node: `${name}-node` },
    podNetnsPrefix: `${name}-pod-`,
    link: {
      nodeInterface: 'ws0',
      workstationInterface: 'eth0',
      node,
      workstation: { ipv4: '198.18.0.2', ipv6: '2001:2::2' },
      ipv4PrefixLength: 30,
      ipv6PrefixLength: 64,
      cidrs: ['198.18.0.0/30', '2001:2::/64'],
    },
    bridge: { name: 'ktbr0' },
    controlPlane: {
      address: node.ipv4,
      port: API_PORT,
      server: serverUrl(node.ipv4, API_PORT),
      serviceClusterIpRange: serviceCidrs.join(','),
      stateDir: `${stateDir}/control-plane`,
    },
    workstationKubeconfig,
    nodes: [
      { name: 'node-1', podCidrs: ['10.244.0.0/24', 'fd10:244::/64'], kubeletPort: 10250 },
      { name: 'node-2', podCidrs: ['10.244.1.0/24', 'fd10:244:0:1::/64'], kubeletPort: 10251 },
    ],
    podCidrs: ['10.244.0.0/16', 'fd10:244::/56'],
    serviceCidrs,
    clusterDns: { ipv4: '10.96.0.10', ipv6: 'fd10:96::a' },
    upstreamDns: {
      addresses: node,
      domain: 'upstream.test',
      records: [{ name: 'www.upstream.test', ipv4: node.ipv4, ipv6: node.ipv6 }],
    },
    manager: {
      namespace: 'kubetun',
      service: 'traffic-manager',
      port: MANAGER_PORT,
      tlsSecret: 'traffic-manager-tls',
      nodePort: MANAGER_NODE_PORT,
      url: managerUrl,
      ipv6Url: `https://[${node.ipv6}]:${MANAGER_NODE_PORT}`,
      caFile: `${stateDir}/manager-ca.crt`,
    },
    deployments: DEPLOYMENTS,
    services,
    dataObjects: DATA_OBJECTS,
    workstationEnv: { KUBECONFIG: workstationKubeconfig, KUBETUN_SANDBOX: name },
  };
}

/** Every range the sandbox puts addresses in: none may overlap a route of the host. */
export function sandboxRanges(config: SandboxConfig): string[] {
  return [...config.link.cidrs, ...config.podCidrs, ...config.serviceCidrs];
}

export function findService(config: SandboxConfig, name: string, namespace = 'default'): SandboxService | undefined {
  return config.services.find((s) => s.name === name && s.namespace === namespace);
}

/** The namespaces the sandbox always creates: workstation and node (pods' namespaces are the kubelets'). */
export function sandboxNamespaces(config: SandboxConfig): string[] {
  return [config.namespaces.workstation, config.namespaces.node];
}
