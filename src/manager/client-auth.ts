// Who may use the traffic manager. A loopback h2c listener is reached only through a port-forward, which the API
// server already authorized (pods/portforward): its clients share one identity. A TLS listener checks every
// request's bearer token: a shared token (a manager outside any cluster), or the client's Kubernetes credentials
// (TokenReview, then a SubjectAccessReview for the port-forward permission on the manager's own pod).

import { createHash, timingSafeEqual } from 'node:crypto';
import { createContextKey } from '@connectrpc/connect';
import { kubeApiRequest, type KubeAccess } from '../k8s/resilient-informer.js';

/** The identity every client of a loopback listener has: whoever the API server let port-forward. */
export const PORT_FORWARD_IDENTITY = 'port-forward';
/** The identity of a client holding the shared token. */
export const TOKEN_IDENTITY = 'token';

/** The authenticated identity of an RPC's caller, set by the traffic manager for the control API's handlers. */
export const CLIENT_IDENTITY = createContextKey<string | undefined>(undefined, { description: 'kubetun client identity' });

export type AuthOutcome = { ok: true; identity: string } | { ok: false; status: 401 | 403 | 503; message: string };

export interface ClientAuthenticator {
  /**
   * Who sent a request carrying this `authorization` header on this HTTP/2 connection (any object standing for
   * the connection: positive answers may be remembered per connection for a short time).
   */
  authenticate(connection: object, authorization: string | undefined): Promise<AuthOutcome>;
}

/** The longest bearer token accepted (OIDC ID tokens run to a few KiB). */
const MAX_TOKEN_LENGTH = 16_384;
const BEARER = /^Bearer ([\x21-\x7e]+)$/i;

const missing = (how: string): AuthOutcome => ({
  ok: false,
  status: 401,
  message: `The traffic manager needs credentials: send "authorization: Bearer <token>" (${how}).`,
});

function bearerToken(authorization: string | undefined): string | undefined {
  const match = authorization === undefined ? null : BEARER.exec(authorization);
  return match === null || match[1]!.length > MAX_TOKEN_LENGTH ? undefined : match[1];
}

const digest = (text: string | Buffer): Buffer => createHash('sha256').update(text).digest();

export const portForwardAuthenticator: ClientAuthenticator = {
  authenticate: async () => ({ ok: true, identity: PORT_FORWARD_IDENTITY }),
};

/**
 * The shared-secret mode (`--client-token-file`): the token must equal the file's first line. Compared as SHA-256
 * digests with timingSafeEqual, so neither the content nor the length leaks through timing.
 */
export function tokenAuthenticator(expected: string): ClientAuthenticator {
  const wanted = digest(expected);
  return {
    authenticate: async (_connection, authorization) => {
      const token = bearerToken(authorization);
      if (token === undefined) return missing('the content of the file given to connect --manager-token-file');
      if (!timingSafeEqual(digest(token), wanted)) {
        return { ok: false, status: 401, message: 'The token is not the one the traffic manager was started with (--client-token-file).' };
      }
      return { ok: true, identity: TOKEN_IDENTITY };
    },
  };
}

/** The manager's own pod: whoever may port-forward to it may use it directly. */
export interface ManagerPod {
  namespace: string;
  name: string;
}

/** Asks the API server who a token belongs to and whether that user may port-forward to the manager's pod. */
export type AccessReview = (token: string) => Promise<AuthOutcome>;

interface ReviewedUser {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export function kubernetesAccessReview(access: KubeAccess, pod: ManagerPod, timeoutMs = 10_000): AccessReview {
  return async (token) => {
    const review = await kubeApiRequest(access, {
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
      timeoutMs,
    });
    if (review.statusCode !== 201 && review.statusCode !== 200) {
      return { ok: false, status: 503, message: `The traffic manager cannot verify credentials now (TokenReview: ${review.statusCode} ${review.message}).` };
    }
    const status = (review.body as { status?: { authenticated?: boolean; user?: ReviewedUser } }).status;
    const user = status?.user;
    if (status?.authenticated !== true || user?.username === undefined) {
      return { ok: false, status: 401, message: 'The Kubernetes API server does not accept these credentials: log in again (refresh the kubeconfig user\'s token).' };
    }
    const allowed = await kubeApiRequest(access, {
      method: 'POST',
      path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          resourceAttributes: { namespace: pod.namespace, verb: 'create', resource: 'pods', subresource: 'portforward', name: pod.name },
        },
      },
      timeoutMs,
    });
    if (allowed.statusCode !== 201 && allowed.statusCode !== 200) {
      return { ok: false, status: 503, message: `The traffic manager cannot verify permissions now (SubjectAccessReview: ${allowed.statusCode} ${allowed.message}).` };
    }
    if ((allowed.body as { status?: { allowed?: boolean } }).status?.allowed !== true) {
      return {
        ok: false,
        status: 403,
        message: `User "${user.username}" may not use this traffic manager: it needs create on pods/portforward in namespace ${pod.namespace} (the same RBAC as kubetun connect through a port-forward).`,
      };
    }
    return { ok: true, identity: `user:${user.username}` };
  };
}

interface Remembered {
  token: Buffer;
  outcome: Promise<AuthOutcome>;
  expiresAt: number;
}

/** Reviews waiting for the API server at once; more are refused (503), so bad tokens cannot flood the API server. */
export const MAX_REVIEWS_IN_FLIGHT = 32;

/**
 * The Kubernetes mode. A positive review is remembered for `ttlMs` per connection and per token (one entry per
 * connection, gone with it: the cache is bounded by the connections), so that a connection's many streams cost
 * one review; a new token on the connection is reviewed again. Refusals are not remembered.
 */
export function kubernetesAuthenticator(review: AccessReview, ttlMs = 10_000, now: () => number = Date.now): ClientAuthenticator {
  const remembered = new WeakMap<object, Remembered>();
  let inFlight = 0;
  return {
    authenticate: async (connection, authorization) => {
      const token = bearerToken(authorization);
      if (token === undefined) return missing("kubetun connect sends the kubeconfig user's token");
      const key = digest(token);
      const known = remembered.get(connection);
      if (known !== undefined && known.expiresAt > now() && timingSafeEqual(known.token, key)) return known.outcome;
      if (inFlight >= MAX_REVIEWS_IN_FLIGHT) {
        return { ok: false, status: 503, message: 'The traffic manager is verifying too many credentials at once: retry in a moment.' };
      }
      inFlight++;
      const entry: Remembered = {
        token: key,
        outcome: review(token)
          .catch((error: Error) => ({
            ok: false as const,
            status: 503 as const,
            message: `The traffic manager cannot reach the Kubernetes API to verify credentials: ${error.message}.`,
          }))
          .finally(() => inFlight--),
        expiresAt: now() + ttlMs,
      };
      remembered.set(connection, entry);
      const outcome = await entry.outcome;
      if (!outcome.ok && remembered.get(connection) === entry) remembered.delete(connection);
      return outcome;
    },
  };
}
