// The Manager service (proto/kubetun/manager/v1/manager.proto): sessions and the cluster info watch.

import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Manager, type ClusterInfoSchema } from '../gen/kubetun/manager/v1/manager_pb.js';
import { formatPrefix } from '../netstack/wire/ip-address.js';
import { CLIENT_IDENTITY } from './client-auth.js';
import type { ClusterInfoSource, ClusterSnapshot } from './cluster-info-source.js';
import type { Logger } from '../log/logger.js';
import type { ClientSession, SessionEndReason, SessionRegistry } from './session-registry.js';

export interface ControlServiceDeps {
  sessions: SessionRegistry;
  cluster: ClusterInfoSource;
  version: string;
  log: Logger;
}

function notFound(): ConnectError {
  return new ConnectError('The session is unknown, expired, or not yours: arrive again.', Code.NotFound);
}

/** The identity the traffic manager authenticated the call with (every call it serves has one). */
function callerOf(context: HandlerContext): string {
  const identity = context.values.get(CLIENT_IDENTITY);
  if (identity === undefined) throw new ConnectError('The call was not authenticated.', Code.Unauthenticated);
  return identity;
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
        const identity = callerOf(context);
        const session = deps.sessions.arrive(
          { name: info.name, namespace: info.namespace, hostname: info.hostname, version: info.version },
          identity,
        );
        deps.log.info('client arrived', { identity, ...session.client });
        return { id: session.id };
      },
      remain(request, context) {
        if (!deps.sessions.remain(request.id, callerOf(context))) throw notFound();
        return {};
      },
      depart(request, context) {
        const identity = callerOf(context);
        if (deps.sessions.depart(request.id, identity)) deps.log.info('client departed', { identity });
        return {};
      },
      async *watchClusterInfo(request, context) {
        yield* watchClusterInfo(live(request.id, context), deps, context);
      },
      version() {
        return { version: deps.version };
      },
    });
}
