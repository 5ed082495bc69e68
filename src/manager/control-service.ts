// The Manager service (proto/kubetun/manager/v1/manager.proto): sessions and the cluster info watch; the intercept
// RPCs come from intercepts/intercept-service.ts.

import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
} from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Manager, type ClientInfo, type ClusterInfoSchema } from '../gen/kubetun/manager/v1/manager_pb.js';
import { formatPrefix } from '../netstack/wire/ip-address.js';
import { CLIENT_IDENTITY } from './client-auth.js';
import type { ClusterInfoSource, ClusterSnapshot } from './cluster-info-source.js';
import type { Logger } from '../log/logger.js';
import { admit, LimitError } from './manager-limits.js';
import type { ClientIdentity, ClientSession, SessionEndReason, SessionRegistry } from './session-registry.js';
import { interceptHandlers, type Intercepting } from './intercepts/intercept-service.js';

export interface ControlServiceDeps {
  sessions: SessionRegistry;
  cluster: ClusterInfoSource;
  version: string;
  log: Logger;
  /** The intercept machinery; undefined without a Kubernetes API (the intercept RPCs then refuse). */
  intercepting?: Intercepting;
}

/** The HTTP/2 connection an RPC came on: sessions per connection are capped. */
const CONNECTION = createContextKey<object | undefined>(undefined);

/** The context values the control API's handlers read; give it to connectNodeAdapter's `contextValues`. */
export function controlContextValues(req: IncomingMessage | Http2ServerRequest): ContextValues {
  return createContextValues().set(CONNECTION, 'stream' in req ? req.stream.session : undefined);
}

function notFound(): ConnectError {
  // The id is not repeated: error messages end up in logs.
  return new ConnectError('The session is unknown, expired, or not yours: arrive again.', Code.NotFound);
}

/** The identity the traffic manager authenticated the call with (every call it serves has one). */
function callerOf(context: HandlerContext): string {
  const identity = context.values.get(CLIENT_IDENTITY);
  if (identity === undefined) throw new ConnectError('The call was not authenticated.', Code.Unauthenticated);
  return identity;
}

/** A DNS-1123 label: the namespace becomes a DNS search entry on the client. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Printable ASCII and nothing else: these go into the manager's logs. */
const PRINTABLE = /^[\x20-\x7e]*$/;
/** Longest accepted: user@host is at most 32 + 1 + 253; a version is short. */
const MAX_LENGTH: Readonly<Record<'name' | 'hostname' | 'version', number>> = { name: 320, hostname: 253, version: 64 };

/** The client's identity, checked: a bad field is refused with InvalidArgument naming it. */
export function clientIdentity(info: ClientInfo): ClientIdentity {
  for (const field of ['name', 'hostname', 'version'] as const) {
    const value = info[field];
    if (value.length > MAX_LENGTH[field] || !PRINTABLE.test(value)) {
      throw new ConnectError(
        `ClientInfo.${field} must be printable ASCII of at most ${MAX_LENGTH[field]} characters.`,
        Code.InvalidArgument,
      );
    }
  }
  if (info.namespace !== '' && !NAMESPACE.test(info.namespace)) {
    throw new ConnectError(
      'ClientInfo.namespace must be a Kubernetes namespace name (a DNS-1123 label: a-z, 0-9 and "-", at most 63).',
      Code.InvalidArgument,
    );
  }
  return { name: info.name, namespace: info.namespace, hostname: info.hostname, version: info.version };
}

/** What a session sees: the cluster facts with the search path of its namespace. */
export function clusterInfoFor(
  snapshot: ClusterSnapshot,
  session: ClientSession,
  version: string,
): MessageInitShape<typeof ClusterInfoSchema> {
  const { facts } = snapshot;
  const namespace = session.client.namespace || 'default';
  return {
    podCidrs: facts.podCidrs.map(formatPrefix),
    serviceCidrs: facts.serviceCidrs.map(formatPrefix),
    dns: {
      serverIp: facts.dns?.ip ?? '',
      clusterDomain: facts.clusterDomain,
      searchPath: [`${namespace}.svc.${facts.clusterDomain}`, `svc.${facts.clusterDomain}`, facts.clusterDomain],
      namespaces: facts.namespaces ?? [],
    },
    version,
    revision: BigInt(snapshot.revision),
  };
}

/**
 * Yields the cluster info at once and again after every change (changes arriving together are sent once, as
 * the latest state), until the call is cancelled or the session ends.
 */
async function* watchClusterInfo(
  session: ClientSession,
  deps: ControlServiceDeps,
  context: HandlerContext,
): AsyncGenerator<MessageInitShape<typeof ClusterInfoSchema>> {
  let changed = true;
  let ended: SessionEndReason | undefined;
  let wake: () => void = () => undefined;
  const onChange = (): void => {
    changed = true;
    wake();
  };
  const onAbort = (): void => wake();
  deps.cluster.on('change', onChange);
  context.signal.addEventListener('abort', onAbort);
  const removeEndHook = session.onEnd((reason) => {
    ended = reason;
    wake();
  });
  try {
    while (ended === undefined && !context.signal.aborted) {
      if (changed) {
        changed = false;
        yield clusterInfoFor(deps.cluster.current(), session, deps.version);
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (ended === 'expired') throw notFound();
  } finally {
    deps.cluster.off('change', onChange);
    context.signal.removeEventListener('abort', onAbort);
    removeEndHook();
  }
}

export function controlRoutes(deps: ControlServiceDeps): (router: ConnectRouter) => void {
  const live = (id: string, context: HandlerContext): ClientSession => {
    const session = deps.sessions.owned(id, callerOf(context));
    if (session === undefined) throw notFound();
    return session;
  };
  return (router) =>
    router.service(Manager, {
      arriveAsClient(info, context) {
        const client = clientIdentity(info);
        const identity = callerOf(context);
        let session: ClientSession;
        try {
          session = deps.sessions.arrive(client, identity, context.values.get(CONNECTION));
        } catch (error) {
          if (!(error instanceof LimitError)) throw error;
          // Debug: a client hammering ArriveAsClient must not flood the log.
          deps.log.debug('session refused', { reason: error.message, name: client.name });
          throw new ConnectError(error.message, Code.ResourceExhausted);
        }
        deps.log.info('client arrived', { session: session.tag, identity, ...session.client });
        return { id: session.id };
      },
      remain(request, context) {
        if (!deps.sessions.remain(request.id, callerOf(context))) throw notFound();
        return {};
      },
      depart(request, context) {
        const identity = callerOf(context);
        const session = deps.sessions.owned(request.id, identity);
        if (session !== undefined && deps.sessions.depart(request.id, identity)) {
          deps.log.info('client departed', { session: session.tag, identity });
        }
        return {};
      },
      async *watchClusterInfo(request, context) {
        const session = live(request.id, context);
        const admission = admit(session.allowances.watches);
        if (!admission.admitted) throw new ConnectError(admission.message, Code.ResourceExhausted);
        try {
          yield* watchClusterInfo(session, deps, context);
        } finally {
          admission.release();
        }
      },
      version() {
        return { version: deps.version };
      },
      ...interceptHandlers(deps.intercepting, live),
    });
}
