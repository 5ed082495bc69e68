// What the user daemon proves itself with to a traffic manager reached by URL: the shared token of
// --manager-token-file, or the kubeconfig user's bearer token (static, from a file, an exec plugin or OIDC: obtained
// here, as the user, never by root), and the CA of --manager-ca. Fetched again for every (re)connection, so that a
// rotated token is the one sent. Held in memory only; never logged.

import { readFileSync } from 'node:fs';
import type * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { Code, ConnectError } from '@connectrpc/connect';
import type { ConnectRequest } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { readTokenFile } from '../manager/client-auth-setup.js';

export interface ManagerCredentials {
  /** Sent as `authorization: Bearer …`; undefined for a loopback h2c manager, which needs none. */
  bearerToken?: string;
  /** PEM of the CA to trust for the manager's certificate; undefined: the system's CAs. */
  caPem?: string;
}

const BEARER = /^Bearer (\S+)$/;

/** The kubeconfig user's bearer token, as kubectl would send it to the API server. */
export async function kubeconfigBearerToken(config: KubeConfig): Promise<string> {
  const options: https.RequestOptions = {};
  try {
    await config.applyToHTTPSOptions(options);
  } catch (error) {
    throw new ConnectError(`cannot get the credentials of kubeconfig user "${config.getCurrentUser()?.name ?? ''}": ${(error as Error).message}`, Code.Unauthenticated);
  }
  const headers = (options.headers ?? {}) as Record<string, unknown>;
  const header = headers.Authorization ?? headers.authorization;
  const match = typeof header === 'string' ? BEARER.exec(header) : null;
  if (match === null) {
    throw new ConnectError(
      `kubeconfig user "${config.getCurrentUser()?.name ?? ''}" has no bearer token (a client certificate or basic auth cannot be passed on to a traffic manager): ` +
        'use a context whose user has a token (token, tokenFile, exec plugin or OIDC), or --manager-token-file',
      Code.Unauthenticated,
    );
  }
  return match[1]!;
}

/** `kube` is the request's kubeconfig when the credentials come from it. Throws ConnectError. */
export async function managerCredentials(request: ConnectRequest, kube: KubeConfig | null): Promise<ManagerCredentials> {
  const credentials: ManagerCredentials = {};
  if (request.managerCaFile !== '') {
    try {
      credentials.caPem = readFileSync(request.managerCaFile, 'utf8');
    } catch (error) {
      throw new ConnectError(`--manager-ca ${request.managerCaFile}: ${(error as Error).message}`, Code.InvalidArgument);
    }
  }
  if (request.managerTokenFile !== '') {
    try {
      credentials.bearerToken = readTokenFile(request.managerTokenFile, '--manager-token-file');
    } catch (error) {
      throw new ConnectError((error as Error).message, Code.InvalidArgument);
    }
  } else if (kube !== null) {
    credentials.bearerToken = await kubeconfigBearerToken(kube);
  }
  return credentials;
}
