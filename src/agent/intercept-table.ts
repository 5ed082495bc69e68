// The intercepts an agent applies, by port: rebuilt whole from every AgentDirective (each carries the complete
// list), with personal filters compiled once per directive rather than per request.

import type { AgentIntercept } from '../gen/kubetun/manager/v1/manager_pb.js';
import type { AgentPortConfig } from './agent-contract.js';
import { compileFilter, HttpFilterError } from './http/http-filter.js';
import type { PersonalRoute } from './http/http-routing.js';

/** What one port does with a new connection (or datagram flow). */
export interface PortIntercepts {
  /** The global or replace intercept that takes every connection, if any. */
  whole: string | undefined;
  personal: readonly PersonalRoute[];
  wiretaps: readonly string[];
}

export const NO_INTERCEPTS: PortIntercepts = Object.freeze({ whole: undefined, personal: [], wiretaps: [] });

/** An intercept the agent could not apply (unknown mode, bad filter): logged, never fatal. */
export interface RejectedIntercept {
  id: string;
  reason: string;
}

/**
 * A replace intercept names no port (container_port 0) when it takes every port of the app container; any other
 * intercept applies to the port with its container port (and its protocol, when given).
 */
function appliesTo(intercept: AgentIntercept, port: AgentPortConfig): boolean {
  if (intercept.mode === 'replace' && intercept.containerPort === 0) return true;
  if (intercept.containerPort !== port.containerPort) return false;
  return intercept.protocol === '' || intercept.protocol.toUpperCase() === port.protocol;
}

export class InterceptTable {
  private byPort = new Map<number, PortIntercepts>();
  private ids: string[] = [];

  constructor(private readonly ports: readonly AgentPortConfig[]) {}

  /** Replaces every intercept with `intercepts`; returns those it could not apply. */
  apply(intercepts: readonly AgentIntercept[]): RejectedIntercept[] {
    const rejected: RejectedIntercept[] = [];
    const next = new Map<number, PortIntercepts>();
    const compiled = new Map<string, PersonalRoute>();
    for (const intercept of intercepts) {
      if (intercept.mode !== 'personal') continue;
      try {
        if (intercept.http === undefined) throw new HttpFilterError('a personal intercept needs an HTTP filter');
        compiled.set(intercept.id, { id: intercept.id, filter: compileFilter(intercept.http) });
      } catch (error) {
        if (!(error instanceof HttpFilterError)) throw error;
        rejected.push({ id: intercept.id, reason: error.message });
      }
    }
    for (const intercept of intercepts) {
      if (!['global', 'replace', 'personal', 'wiretap'].includes(intercept.mode)) {
        rejected.push({ id: intercept.id, reason: `unknown mode "${intercept.mode}"` });
      }
    }
    for (const port of this.ports) {
      let whole: string | undefined;
      const personal: PersonalRoute[] = [];
      const wiretaps: string[] = [];
      for (const intercept of intercepts) {
        if (!appliesTo(intercept, port)) continue;
        if (intercept.mode === 'global' || intercept.mode === 'replace') whole ??= intercept.id;
        else if (intercept.mode === 'wiretap') wiretaps.push(intercept.id);
        else if (compiled.has(intercept.id)) personal.push(compiled.get(intercept.id)!);
      }
      if (whole !== undefined || personal.length > 0 || wiretaps.length > 0) next.set(port.agentPort, { whole, personal, wiretaps });
    }
    this.byPort = next;
    this.ids = intercepts.map((i) => i.id).sort();
    return rejected;
  }

  /** Drops every intercept: traffic goes to the app. */
  clear(): void {
    this.byPort = new Map();
    this.ids = [];
  }

  /** The intercepts of the port listening on `agentPort`, now. */
  forPort(agentPort: number): PortIntercepts {
    return this.byPort.get(agentPort) ?? NO_INTERCEPTS;
  }

  /** The ids applied now, sorted (to log changes). */
  get interceptIds(): readonly string[] {
    return this.ids;
  }
}
