// The Manager service's intercept RPCs (CreateIntercept … WatchDials), served beside the session RPCs on the
// clients' listener. Every call names a session of the caller's own; without a Kubernetes API they all refuse.

import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { Manager } from '../../gen/kubetun/manager/v1/manager_pb.js';
import { LimitError } from '../manager-limits.js';
import type { ClientSession } from '../session-registry.js';
import type { AgentRegistry } from './agent-registry.js';
import type { DialBroker } from './dial-broker.js';
import type { InterceptRegistry } from './intercept-registry.js';
import { WorkloadApiError, type WorkloadApi } from './workload-api.js';
import { describeWorkloads } from './workload-listing.js';
import { DNS_LABEL } from './intercept-spec.js';

export interface Intercepting {
  api: WorkloadApi;
  agents: AgentRegistry;
  intercepts: InterceptRegistry;
  broker: DialBroker;
}

type InterceptHandlers = Pick<
  ServiceImpl<typeof Manager>,
  'createIntercept' | 'getIntercept' | 'removeIntercept' | 'listIntercepts' | 'listWorkloads' | 'watchDials'
>;

/** The handlers; `live` turns a session id into the caller's live session (or throws NotFound). */
export function interceptHandlers(intercepting: Intercepting | undefined, live: (id: string, context: Parameters<InterceptHandlers['getIntercept']>[1]) => ClientSession): InterceptHandlers {
  const need = (): Intercepting => {
    if (intercepting === undefined) throw new ConnectError('this traffic manager has no Kubernetes API, so it cannot intercept: run it in the cluster (kubetun install) or give it --kubeconfig.', Code.FailedPrecondition);
    return intercepting;
  };
  return {
    async createIntercept(request, context) {
      const { intercepts } = need();
      return intercepts.create(live(request.sessionId, context), request.spec);
    },
    getIntercept(request, context) {
      const { intercepts } = need();
      return intercepts.settledInfo(intercepts.owned(live(request.sessionId, context), request.id));
    },
    removeIntercept(request, context) {
      const { intercepts } = need();
      intercepts.remove(live(request.sessionId, context), request.id);
      return {};
    },
    listIntercepts(request, context) {
      const { intercepts } = need();
      return { intercepts: intercepts.ofSession(live(request.id, context)).map((i) => intercepts.info(i, true)) };
    },
    async listWorkloads(request, context) {
      const { api, agents, intercepts } = need();
      live(request.sessionId, context);
      if (request.namespace !== '' && !DNS_LABEL.test(request.namespace)) throw new ConnectError('namespace must be a namespace name (a DNS-1123 label).', Code.InvalidArgument);
      const namespace = request.namespace === '' ? undefined : request.namespace;
      try {
        const [workloads, services] = await Promise.all([api.listWorkloads(namespace), api.listServices(namespace)]);
        return { workloads: describeWorkloads(workloads, services, agents, intercepts) };
      } catch (error) {
        if (!(error instanceof WorkloadApiError)) throw error;
        const code = error.statusCode === 403 ? Code.PermissionDenied : Code.Unavailable;
        throw new ConnectError(`cannot list workloads: ${error.message}`, code);
      }
    },
    async *watchDials(request, context) {
      const { broker } = need();
      const session = live(request.id, context);
      try {
        yield* broker.watch(session, context.signal);
      } catch (error) {
        if (error instanceof LimitError) throw new ConnectError(error.message, Code.ResourceExhausted);
        throw error;
      }
    },
  };
}
