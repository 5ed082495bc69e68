// Loading the user's kubeconfig (--kubeconfig, KUBECONFIG or ~/.kube/config, with --context) and turning the
// Kubernetes API's failures into sentences that say what went wrong and what to do. Shared by every command
// that talks to a cluster, as is the API client configuration with a per-request timeout.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ApiException, KubeConfig, ServerConfiguration, createConfiguration, type Configuration } from '@kubernetes/client-node';
import { KubeConfigError } from './kube-config-error.js';

export { KubeConfigError };

export interface KubeConfigOptions {
  /** A kubeconfig file; wins over KUBECONFIG. */
  kubeconfig?: string;
  /** A context of that file to use instead of its current-context. */
  context?: string;
  /** Where KUBECONFIG and HOME come from; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

function kubeconfigFiles(options: KubeConfigOptions): string[] {
  const env = options.env ?? process.env;
  if (options.kubeconfig !== undefined) {
    if (!existsSync(options.kubeconfig)) throw new KubeConfigError(`the kubeconfig file ${options.kubeconfig} (from --kubeconfig) does not exist`);
    return [options.kubeconfig];
  }
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter((file) => file !== '');
  if (listed.length > 0) {
    // Like kubectl: files of the list that do not exist are skipped, but not all of them.
    const present = listed.filter((file) => existsSync(file));
    if (present.length === 0) throw new KubeConfigError(`no file of KUBECONFIG (${listed.join(delimiter)}) exists: fix KUBECONFIG or pass --kubeconfig`);
    return present;
  }
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return [home];
  throw new KubeConfigError(`no kubeconfig: set KUBECONFIG or pass --kubeconfig (${home} does not exist either)`);
}

function readFile(file: string): KubeConfig {
  const config = new KubeConfig();
  try {
    config.loadFromFile(file);
  } catch (error) {
    throw new KubeConfigError(`cannot read the kubeconfig ${file}: ${(error as Error).message}`);
  }
  return config;
}

/** Merges like kubectl: the first file that names a cluster, user or context (or the current context) wins. */
function merge(into: KubeConfig, other: KubeConfig): void {
  for (const cluster of other.getClusters()) if (into.getCluster(cluster.name) === null) into.addCluster(cluster);
  for (const user of other.getUsers()) if (into.getUser(user.name) === null) into.addUser(user);
  for (const context of other.getContexts()) if (into.getContextObject(context.name) === null) into.addContext(context);
  if (!into.getCurrentContext() && other.getCurrentContext()) into.setCurrentContext(other.getCurrentContext());
}

const contextList = (config: KubeConfig): string => config.getContexts().map((c) => c.name).join(', ') || '(none)';

/** The kubeconfig to talk to the cluster with, its current context checked; throws KubeConfigError. */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const files = kubeconfigFiles(options);
  const [first, ...rest] = files.map(readFile) as [KubeConfig, ...KubeConfig[]];
  for (const other of rest) merge(first, other);
  const where = files.join(delimiter);
  if (options.context !== undefined) {
    if (first.getContextObject(options.context) === null) {
      throw new KubeConfigError(`context "${options.context}" is not in ${where}; its contexts are ${contextList(first)}`);
    }
    first.setCurrentContext(options.context);
  }
  const name = first.getCurrentContext();
  const context = name ? first.getContextObject(name) : null;
  if (context === null) {
    const why = name ? `its current-context "${name}" is not one of its contexts` : 'it has no current-context';
    throw new KubeConfigError(`${where}: ${why}; pass --context (its contexts are ${contextList(first)})`);
  }
  if (first.getCluster(context.cluster) === null) {
    throw new KubeConfigError(`context "${name}" of ${where} names cluster "${context.cluster}", which is not in it`);
  }
  if (context.user && first.getUser(context.user) === null) {
    throw new KubeConfigError(`context "${name}" of ${where} names user "${context.user}", which is not in it`);
  }
  return first;
}

interface Status {
  reason?: string;
  message?: string;
}

function statusOf(body: unknown): Status {
  if (typeof body === 'object' && body !== null) return body as Status;
  if (typeof body !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Status) : { message: body };
  } catch {
    return body.trim() === '' ? {} : { message: body.trim() };
  }
}

// The API server's RBAC denial: `User "u" cannot create resource "services" in API group "" in the namespace "n"`.
const FORBIDDEN = /User "([^"]*)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)"| at the cluster scope)?/;

function describeForbidden(message: string, what: string): string {
  const match = FORBIDDEN.exec(message);
  const advice = 'ask a cluster admin to grant it (RBAC), or use a --context whose user has it';
  if (match === null) return `cannot ${what}: forbidden (403): ${message || 'no reason given'}; ${advice}`;
  const [, user, verb, resource, group, namespace] = match;
  const qualified = group ? `${resource}.${group}` : resource;
  // A Namespace is cluster-scoped even though the server names it as the request's namespace.
  const scope = namespace === undefined || resource === 'namespaces' ? 'cluster-wide' : `in namespace "${namespace}"`;
  return `cannot ${what}: user "${user}" lacks the permission to ${verb} ${qualified} ${scope} (403 Forbidden); ${advice}`;
}

interface Target {
  server: string;
  user: string;
}

function targetOf(error: unknown, config: KubeConfig | undefined): Target {
  const fromMessage = /\b(https?:\/\/[^/\s,]+)/.exec(error instanceof Error ? error.message : '')?.[1];
  return {
    server: config?.getCurrentCluster()?.server ?? fromMessage ?? 'the API server',
    user: config?.getCurrentUser()?.name ?? '',
  };
}

const UNREACHABLE = new Set(['ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_SOCKET_CONNECTION_TIMEOUT']);
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS/;

function systemCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === 'string') return code;
  return cause === undefined ? undefined : systemCode(cause);
}

/**
 * One sentence for a failed Kubernetes API call: `what` is the attempt ("create Deployment kubetun/traffic-manager"),
 * `config` (optional) names the server and user of the current context.
 */
export function describeApiError(error: unknown, what: string, config?: KubeConfig): string {
  const { server, user } = targetOf(error, config);
  if (error instanceof ApiException) {
    const status = statusOf(error.body);
    const message = status.message ?? '';
    switch (error.code) {
      case 401:
        return (
          `cannot ${what}: ${server} rejected the credentials${user ? ` of kubeconfig user "${user}"` : ''} (401 Unauthorized): ` +
          'they are expired or invalid; log in again / refresh the token, then retry'
        );
      case 403:
        return describeForbidden(message, what);
      case 404:
        return `cannot ${what}: not found (404)${message ? `: ${message}` : ''}`;
      case 409:
        return `cannot ${what}: conflict (409)${message ? `: ${message}` : ''}; retry`;
      default:
        return `cannot ${what}: ${server} answered ${error.code}${status.reason ? ` ${status.reason}` : ''}${message ? `: ${message}` : ''}`;
    }
  }
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError' || name === 'TimeoutError') {
    return `cannot ${what}: ${server} did not answer in time: check the network (VPN, firewall) and that this is the right --context`;
  }
  const code = systemCode(error);
  if (code === 'ECONNREFUSED') return `cannot ${what}: ${server} refused the connection: is the cluster running, and is this the right --context?`;
  if (code !== undefined && UNREACHABLE.has(code)) {
    return `cannot ${what}: no answer from ${server} (${code}): check the network (VPN, firewall) and that this is the right --context`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot ${what}: cannot resolve the host of ${server} (${code}): check the kubeconfig's server and your DNS`;
  if (code !== undefined && UNTRUSTED.test(code)) {
    return `cannot ${what}: the certificate of ${server} is not trusted (${code}): check certificate-authority(-data) in the kubeconfig`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `cannot ${what}: ${message}`;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * What config.makeApiClient uses, but each request is aborted after `timeoutMs`: against a silent server a call
 * would otherwise hang for minutes.
 */
export function timedApiConfiguration(config: KubeConfig, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Configuration {
  return createConfiguration({
    baseServer: new ServerConfiguration(config.getCurrentCluster()?.server ?? '', {}),
    authMethods: { default: config },
    promiseMiddleware: [
      {
        pre: async (context) => {
          context.setSignal(AbortSignal.timeout(timeoutMs));
          return context;
        },
        post: async (response) => response,
      },
    ],
  });
}
