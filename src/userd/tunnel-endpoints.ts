// The addresses the tunnel itself travels to, which the root daemon must never route into the tunnel (a cluster
// CIDR holding the API server would otherwise send the port-forward into itself): the manager URL's host when the
// manager is reached directly, else the kubeconfig's API server. Resolved here, as the user, before kubetun's DNS
// is in place; the root daemon gets addresses only.
import type { Client } from '@connectrpc/connect';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ConnectRequest, RootDaemon } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { loadKubeConfig } from '../k8s/kube-client.js';

export type HostLookup = (host: string) => Promise<string[]>;

const lookupAll: HostLookup = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** The URL the tunnel depends on: the manager's own, or (through a port-forward) the API server's. */
function endpointUrl(request: ConnectRequest): string | undefined {
  if (request.managerUrl !== '') return request.managerUrl;
  const env = request.kubeconfig === '' ? process.env : { ...process.env, KUBECONFIG: request.kubeconfig };
  return loadKubeConfig({ context: request.context || undefined, env }).getCurrentCluster()?.server;
}

/** The addresses of the request's tunnel endpoint; none for a Unix socket or a host that does not resolve. */
export async function tunnelEndpoints(request: ConnectRequest, resolve: HostLookup = lookupAll): Promise<string[]> {
  let url: URL;
  try {
    url = new URL(endpointUrl(request) ?? '');
  } catch {
    return [];
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol === 'unix:' || host === '') return [];
  if (isIP(host) !== 0) return [host];
  // A host that does not resolve now cannot be reached by the tunnel either: the connect fails on its own.
  return resolve(host).catch(() => []);
}

/** The root daemon's client, with every Connect carrying the tunnel endpoints of the session `current()` gives. */
export function withTunnelEndpoints(root: Client<typeof RootDaemon>, current: () => ConnectRequest | undefined): Client<typeof RootDaemon> {
  return {
    ...root,
    connect: async (request, options) => {
      const session = current();
      return root.connect({ ...request, tunnelEndpoints: session === undefined ? [] : await tunnelEndpoints(session) }, options);
    },
  };
}
