// The session's intercepts, on the laptop: creates them at the manager and waits for their agents, serves the
// connections they bring (one WatchDials stream while there are any), re-creates them when the session is renewed
// (a manager restart, an expiry), and ends them with Leave or with the session. One that can no longer be created
// stays listed as "failed" with the manager's reason: an intercept is never lost without a word.

import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import type { KubeConfig } from '@kubernetes/client-node';
import type { InterceptRequest, LeaveRequest, ListRequest } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import {
  InterceptListSchema,
  InterceptSpecSchema,
  type InterceptDial,
  type InterceptInfo,
  type InterceptList,
  type InterceptSpec,
  type WorkloadList,
} from '../gen/kubetun/manager/v1/manager_pb.js';
import type { Logger } from '../log/logger.js';
import type { TunnelClient } from '../tunnel/tunnel-client.js';
import { serveDial } from './intercept-dials.js';
import { latestWarning } from './pod-events.js';

/** What the intercepts need of the user daemon's session, as it is now (the id changes when it is renewed). */
export interface InterceptSession {
  tunnel: TunnelClient;
  sessionId: string;
  namespace: string;
  /** The user's kubeconfig, to read the pods' events with; null when there is none (a manager URL and a token). */
  kube: KubeConfig | null;
}

export const INTERCEPT_MODES = ['global', 'personal', 'wiretap', 'replace'] as const;
const DEFAULT_WAIT_S = 60;
const MAX_WAIT_S = 600;
const POLL_MS = 250;
/** A broken dial watch (the connection dropped) is opened again after this, until the session changes. */
const DIALS_RETRY_MS = 1_000;

interface Entry {
  /** `namespace/workload`: one intercept per workload and session. */
  key: string;
  spec: InterceptSpec;
  /** The latest the manager said of it (its id changes when it is re-created in a renewed session). */
  info: InterceptInfo;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const messageOf = (error: unknown): string => (error instanceof ConnectError ? error.rawMessage : (error as Error).message);

export class InterceptRegistry {
  private readonly entries = new Map<string, Entry>();
  private dials: { sessionId: string; controller: AbortController } | null = null;

  constructor(
    private readonly current: () => InterceptSession | null,
    private readonly log: Logger,
  ) {}

  /** The UserDaemon RPCs this serves. */
  readonly rpcs = {
    intercept: (request: InterceptRequest, context: HandlerContext) => this.intercept(request, context.signal),
    leave: async (request: LeaveRequest) => {
      await this.leave(request);
      return {};
    },
    listIntercepts: () => this.list(),
    listWorkloads: (request: ListRequest) => this.listWorkloads(request),
  };

  private connected(): InterceptSession {
    const session = this.current();
    if (session === null) throw new ConnectError('not connected: run kubetun connect first', Code.FailedPrecondition);
    return session;
  }

  /**
   * Creates the intercept and waits until its agents apply it; on failure, timeout, or when the caller gives up
   * (`signal`: the CLI was interrupted) it is removed again, so that nobody holds an intercept they never saw.
   */
  async intercept(request: InterceptRequest, signal?: AbortSignal): Promise<InterceptInfo> {
    const session = this.connected();
    const spec = checkedSpec(request, session.namespace);
    const key = `${spec.namespace}/${spec.workload}`;
    if (this.entries.has(key)) {
      throw new ConnectError(`you already intercept ${key}: run kubetun leave ${spec.workload} -n ${spec.namespace} first`, Code.AlreadyExists);
    }
    const waitSeconds = request.waitSeconds || DEFAULT_WAIT_S;
    const entry: Entry = { key, spec, info: await session.tunnel.manager.createIntercept({ sessionId: session.sessionId, spec }) };
    this.entries.set(key, entry);
    this.watchDials(session);
    this.log.info('intercept created', { workload: key, mode: spec.mode, state: entry.info.state });
    try {
      const deadline = Date.now() + waitSeconds * 1000;
      while (entry.info.state === 'waiting' && Date.now() < deadline) {
        await delay(POLL_MS);
        if (this.entries.get(key) !== entry) throw new ConnectError(`the intercept of ${key} ended while its agents were awaited`, Code.Aborted);
        if (signal?.aborted === true) throw new ConnectError(`the intercept of ${key} was given up while its agents were awaited`, Code.Canceled);
        const now = this.connected();
        entry.info = await now.tunnel.manager.getIntercept({ sessionId: now.sessionId, id: entry.info.id });
      }
    } catch (error) {
      await this.drop(entry);
      throw error;
    }
    if (entry.info.state === 'active') return entry.info;
    await this.drop(entry);
    if (entry.info.state === 'failed') throw new ConnectError(`the intercept of ${key} failed: ${entry.info.message}`, Code.FailedPrecondition);
    const warning = session.kube === null ? undefined : await latestWarning(session.kube, spec.namespace, spec.workload, entry.info.pods);
    throw new ConnectError(
      `the agent did not arrive in ${waitSeconds} s${warning === undefined ? ' (no Warning event on its pods)' : `; latest event: ${warning}`}`,
      Code.DeadlineExceeded,
    );
  }

  async leave(request: LeaveRequest): Promise<void> {
    const namespace = request.namespace || this.current()?.namespace || 'default';
    const key = `${namespace}/${request.workload}`;
    const entry = this.entries.get(key);
    if (entry === undefined) throw new ConnectError(`no intercept of ${key} in this session: kubetun status lists them`, Code.NotFound);
    const session = this.current();
    if (session !== null && entry.info.state !== 'failed') {
      try {
        await session.tunnel.manager.removeIntercept({ sessionId: session.sessionId, id: entry.info.id });
      } catch (error) {
        if (!(error instanceof ConnectError && error.code === Code.NotFound)) {
          throw new ConnectError(`cannot end the intercept of ${key}: ${messageOf(error)}; try again`, Code.Unavailable);
        }
      }
    }
    this.forget(entry);
    this.log.info('intercept left', { workload: key });
  }

  /** The intercepts with the manager's latest state and counts; environments left out (they hold Secret values). */
  async list(): Promise<InterceptList> {
    const session = this.current();
    if (session !== null) {
      try {
        const remote = await session.tunnel.manager.listIntercepts({ id: session.sessionId });
        for (const entry of this.entries.values()) {
          const now = remote.intercepts.find((i) => i.id === entry.info.id);
          if (now !== undefined) entry.info = { ...now, environment: entry.info.environment };
          else if (entry.info.state !== 'failed') markFailed(entry, 'the traffic manager no longer has it');
        }
      } catch (error) {
        this.log.debug('listing the intercepts at the manager failed', { error: messageOf(error) });
      }
    }
    return create(InterceptListSchema, { intercepts: [...this.entries.values()].map((e) => ({ ...e.info, environment: {} })) });
  }

  async listWorkloads(request: ListRequest): Promise<WorkloadList> {
    const session = this.connected();
    const namespace = request.namespace === '*' ? '' : request.namespace || session.namespace;
    return session.tunnel.manager.listWorkloads({ sessionId: session.sessionId, namespace });
  }

  /** After the session was renewed: every intercept is created again in the new one. */
  async sessionRenewed(): Promise<void> {
    const session = this.current();
    if (session === null || this.entries.size === 0) return;
    this.stopDials();
    for (const entry of this.entries.values()) {
      if (entry.info.state === 'failed') continue;
      try {
        entry.info = await session.tunnel.manager.createIntercept({ sessionId: session.sessionId, spec: entry.spec });
        this.log.info('intercept restored in the renewed session', { workload: entry.key });
      } catch (error) {
        markFailed(entry, `it could not be restored after the session was renewed: ${messageOf(error)}`);
        this.log.warn('intercept lost with the session', { workload: entry.key, error: messageOf(error) });
      }
    }
    if ([...this.entries.values()].some((e) => e.info.state !== 'failed')) this.watchDials(session);
  }

  /** The session ended (disconnect, quit): its intercepts ended with it at the manager. */
  clear(): void {
    this.stopDials();
    this.entries.clear();
  }

  private async drop(entry: Entry): Promise<void> {
    const session = this.current();
    if (session !== null) await session.tunnel.manager.removeIntercept({ sessionId: session.sessionId, id: entry.info.id }).catch(() => undefined);
    this.forget(entry);
  }

  private forget(entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    if (![...this.entries.values()].some((e) => e.info.state !== 'failed')) this.stopDials();
  }

  private stopDials(): void {
    this.dials?.controller.abort();
    this.dials = null;
  }

  private watchDials(session: InterceptSession): void {
    if (this.dials?.sessionId === session.sessionId) return;
    this.stopDials();
    const controller = new AbortController();
    this.dials = { sessionId: session.sessionId, controller };
    void this.runDials(session, controller.signal);
  }

  private async runDials(session: InterceptSession, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.current()?.sessionId === session.sessionId) {
      try {
        for await (const dial of session.tunnel.manager.watchDials({ id: session.sessionId }, { signal })) this.onDial(session, dial);
      } catch (error) {
        if (!signal.aborted) this.log.warn('the watch of intercepted connections broke; watching again', { error: messageOf(error) });
      }
      if (!signal.aborted) await delay(DIALS_RETRY_MS);
    }
  }

  private onDial(session: InterceptSession, dial: InterceptDial): void {
    const entry = [...this.entries.values()].find((e) => e.info.id === dial.interceptId);
    if (entry === undefined) {
      void session.tunnel.refuseDial(dial.id, 'refused', 'this laptop no longer has that intercept').catch(() => undefined);
      return;
    }
    void serveDial(session.tunnel, dial, { localPort: entry.spec.localPort, workload: entry.key }, this.log);
  }
}

function markFailed(entry: Entry, message: string): void {
  entry.info = { ...entry.info, state: 'failed', message };
}

/** The spec to ask the manager for; the manager checks the rest (workload, Service, port, filter). */
function checkedSpec(request: InterceptRequest, sessionNamespace: string): InterceptSpec {
  if (request.workload === '') throw new ConnectError('name the workload to intercept (kubetun list shows them)', Code.InvalidArgument);
  if (!(INTERCEPT_MODES as readonly string[]).includes(request.mode)) {
    throw new ConnectError(`mode "${request.mode}" is not one of ${INTERCEPT_MODES.join(', ')}`, Code.InvalidArgument);
  }
  if (request.localPort < 1 || request.localPort > 65535) {
    throw new ConnectError(`local port ${request.localPort} is not a port from 1 to 65535`, Code.InvalidArgument);
  }
  if (request.waitSeconds > MAX_WAIT_S) throw new ConnectError(`wait ${request.waitSeconds} s is longer than ${MAX_WAIT_S} s`, Code.InvalidArgument);
  return create(InterceptSpecSchema, {
    workload: request.workload,
    namespace: request.namespace || sessionNamespace,
    kind: request.kind,
    mode: request.mode,
    service: request.service,
    servicePort: request.servicePort,
    ...(request.http === undefined ? {} : { http: request.http }),
    localPort: request.localPort,
  });
}
