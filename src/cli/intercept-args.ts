// The intercept commands' options read into a UserDaemon InterceptRequest: the port spec, the HTTP filter (checked
// here with the filter's own rules, so a bad regex is reported before anything is created), the mode, the wait.

import { create } from '@bufbuild/protobuf';
import { InterceptRequestSchema, type InterceptRequest } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { HttpFilterSchema, type HttpFilter } from '../gen/kubetun/manager/v1/manager_pb.js';
import { compileFilter, HttpFilterError, isPersonal } from '../agent/http/http-filter.js';

export type InterceptCommand = 'intercept' | 'replace' | 'wiretap';

export interface InterceptOptions {
  port: string;
  service?: string;
  namespace?: string;
  kind?: string;
  httpHeader?: string[];
  httpHeaderRegex?: string[];
  httpPathPrefix?: string;
  httpPathEqual?: string;
  httpPathRegex?: string;
  wait?: string;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const MAX_WAIT_S = 600;
const KINDS = ['Deployment', 'StatefulSet', 'ReplicaSet'];
/** A Service port's name (RFC 6335 IANA_SVC_NAME, as Kubernetes checks it) or number. */
const SERVICE_PORT = /^(?:[0-9]{1,5}|[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?)$/;

/** `LOCAL[:SERVICEPORT]`: the local port, and the Service port by number or name (empty: the only one). */
export function parsePortSpec(spec: string): { localPort: number; servicePort: string } {
  const colon = spec.indexOf(':');
  const local = colon < 0 ? spec : spec.slice(0, colon);
  const servicePort = colon < 0 ? '' : spec.slice(colon + 1);
  const localPort = /^[0-9]{1,5}$/.test(local) ? Number(local) : 0;
  if (localPort < 1 || localPort > 65535) throw new UsageError(`--port ${spec}: the local port must be a number from 1 to 65535 (--port LOCAL[:SERVICEPORT])`);
  if (colon >= 0 && !SERVICE_PORT.test(servicePort)) {
    throw new UsageError(`--port ${spec}: "${servicePort}" is not a Service port number or name (--port LOCAL[:SERVICEPORT])`);
  }
  if (/^[0-9]+$/.test(servicePort) && (Number(servicePort) < 1 || Number(servicePort) > 65535)) {
    throw new UsageError(`--port ${spec}: Service port ${servicePort} is not from 1 to 65535`);
  }
  return { localPort, servicePort };
}

/** `NAME=VALUE` of --http-header / --http-header-regex. */
function headerMatch(text: string, regex: boolean): { name: string; value: string; regex: boolean } {
  const eq = text.indexOf('=');
  const flag = regex ? '--http-header-regex' : '--http-header';
  if (eq <= 0) throw new UsageError(`${flag} ${text}: write NAME=${regex ? 'REGEX' : 'VALUE'}`);
  return { name: text.slice(0, eq), value: text.slice(eq + 1), regex };
}

/** The filter the --http-* options describe; throws UsageError naming the bad option. */
export function parseHttpFilter(opts: InterceptOptions): HttpFilter {
  const paths = [opts.httpPathPrefix, opts.httpPathEqual, opts.httpPathRegex].filter((p) => p !== undefined);
  if (paths.length > 1) throw new UsageError('give at most one of --http-path-prefix, --http-path-equal and --http-path-regex');
  const filter = create(HttpFilterSchema, {
    headers: [...(opts.httpHeader ?? []).map((h) => headerMatch(h, false)), ...(opts.httpHeaderRegex ?? []).map((h) => headerMatch(h, true))],
    pathPrefix: opts.httpPathPrefix ?? '',
    pathEqual: opts.httpPathEqual ?? '',
    pathRegex: opts.httpPathRegex ?? '',
  });
  if (paths.some((p) => p === '')) throw new UsageError('an --http-path-* option needs a path');
  try {
    compileFilter(filter);
  } catch (error) {
    if (error instanceof HttpFilterError) throw new UsageError(`the HTTP filter: ${error.message}`);
    throw error;
  }
  return filter;
}

function parseKind(kind: string | undefined): string {
  if (kind === undefined) return '';
  const known = KINDS.find((k) => k.toLowerCase() === kind.toLowerCase());
  if (known === undefined) throw new UsageError(`--kind ${kind}: one of ${KINDS.join(', ')}`);
  return known;
}

function parseWait(wait: string | undefined): number {
  if (wait === undefined) return 0;
  const seconds = /^[0-9]{1,4}$/.test(wait) ? Number(wait) : 0;
  if (seconds < 1 || seconds > MAX_WAIT_S) throw new UsageError(`--wait ${wait}: whole seconds from 1 to ${MAX_WAIT_S}`);
  return seconds;
}

/**
 * The request for `kubetun intercept|replace|wiretap NAME`: intercept is personal when an --http-* option narrows
 * it, else global. Throws UsageError.
 */
export function interceptRequest(command: InterceptCommand, workload: string, opts: InterceptOptions): InterceptRequest {
  const { localPort, servicePort } = parsePortSpec(opts.port);
  const http = parseHttpFilter(opts);
  const personal = isPersonal(http);
  if (command === 'replace' && personal) throw new UsageError('replace takes all the traffic: it has no --http-* options (use intercept)');
  const mode = command === 'intercept' ? (personal ? 'personal' : 'global') : command;
  return create(InterceptRequestSchema, {
    workload,
    namespace: opts.namespace ?? '',
    kind: parseKind(opts.kind),
    mode,
    localPort,
    service: opts.service ?? '',
    servicePort,
    ...(personal ? { http } : {}),
    waitSeconds: parseWait(opts.wait),
  });
}
