// A client's InterceptSpec, checked where it enters: names that are Kubernetes names, a known mode, and a filter
// exactly when the mode is personal. Anything wrong is refused with InvalidArgument naming the field and the fix.

import { Code, ConnectError } from '@connectrpc/connect';
import type { InterceptSpec } from '../../gen/kubetun/manager/v1/manager_pb.js';
import { compileFilter, HttpFilterError, isPersonal, type CompiledFilter } from '../../agent/http/http-filter.js';
import { WORKLOAD_KINDS, type WorkloadKind, type WorkloadRef } from './workload-api.js';

export type InterceptMode = 'global' | 'personal' | 'wiretap' | 'replace';
const MODES: readonly InterceptMode[] = ['global', 'personal', 'wiretap', 'replace'];

/** DNS-1123 label (namespaces, Services) and subdomain (workload names). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A port name (IANA_SVC_NAME) or number. */
const SERVICE_PORT = /^([0-9]{1,5}|[a-z0-9-]{1,15})$/;

export interface CheckedSpec {
  ref: WorkloadRef;
  mode: InterceptMode;
  filter: CompiledFilter | undefined;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function checkSpec(spec: InterceptSpec | undefined): CheckedSpec {
  if (spec === undefined) throw invalid('CreateInterceptRequest.spec is missing.');
  if (!DNS_SUBDOMAIN.test(spec.workload)) throw invalid(`"${spec.workload.slice(0, 64)}" is not a workload name (a DNS-1123 subdomain: a-z, 0-9, "-" and ".").`);
  if (!DNS_LABEL.test(spec.namespace)) throw invalid(`"${spec.namespace.slice(0, 64)}" is not a namespace name (a DNS-1123 label).`);
  const kind = (spec.kind === '' ? 'Deployment' : spec.kind) as WorkloadKind;
  if (!WORKLOAD_KINDS.includes(kind)) throw invalid(`kind "${spec.kind.slice(0, 32)}" cannot be intercepted: use ${WORKLOAD_KINDS.join(', ')}.`);
  const mode = spec.mode as InterceptMode;
  if (!MODES.includes(mode)) throw invalid(`mode "${spec.mode.slice(0, 32)}" is unknown: use ${MODES.join(', ')}.`);
  if (spec.service !== '' && !DNS_LABEL.test(spec.service)) throw invalid(`"${spec.service.slice(0, 64)}" is not a Service name.`);
  if (spec.servicePort !== '' && !SERVICE_PORT.test(spec.servicePort)) throw invalid(`"${spec.servicePort.slice(0, 32)}" is not a port number or name.`);
  if (spec.localPort > 65535) throw invalid('local_port must be a port number up to 65535.');
  const personal = isPersonal(spec.http);
  if (mode === 'personal' && !personal) throw invalid('a personal intercept needs an HTTP filter: a header (--http-header) or a path.');
  if (mode !== 'personal' && personal) throw invalid(`a ${mode} intercept takes every request: give an HTTP filter only with a personal intercept.`);
  let filter: CompiledFilter | undefined;
  if (personal) {
    try {
      filter = compileFilter(spec.http!);
    } catch (error) {
      if (error instanceof HttpFilterError) throw invalid(`the HTTP filter: ${error.message}`);
      throw error;
    }
  }
  return { ref: { kind, namespace: spec.namespace, name: spec.workload }, mode, filter };
}
