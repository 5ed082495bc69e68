// Client sessions: created on arrival, kept alive by Remain within the TTL, ended by Depart or expiry. Ending a
// session closes what hangs off it (tunnel streams, cluster info watches) through its end hooks. A session belongs
// to the authenticated identity that created it: its id alone is no credential. How many live at once, in all and
// per connection, is capped, and each session carries the allowances its flows draw from.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Allowance, DEFAULT_LIMITS, LimitError, type ManagerLimits } from './manager-limits.js';

export interface ClientIdentity {
  name: string;
  namespace: string;
  hostname: string;
  version: string;
}

export type SessionEndReason = 'departed' | 'expired' | 'shutdown';

export type SessionLimits = Pick<
  ManagerLimits,
  'sessions' | 'sessionsPerConnection' | 'tcpFlowsPerSession' | 'udpFlowsPerSession' | 'dnsQueriesPerSession' | 'watchesPerSession'
>;

/** What one session may hold at once. */
export interface SessionAllowances {
  tcpFlows: Allowance;
  udpFlows: Allowance;
  dnsQueries: Allowance;
  watches: Allowance;
}

function sessionAllowances(limits: SessionLimits): SessionAllowances {
  return {
    tcpFlows: new Allowance('TCP flows per session', limits.tcpFlowsPerSession),
    udpFlows: new Allowance('UDP flows per session', limits.udpFlowsPerSession),
    dnsQueries: new Allowance('DNS queries in flight per session', limits.dnsQueriesPerSession),
    watches: new Allowance('cluster info watches per session', limits.watchesPerSession),
  };
}

export class ClientSession {
  private readonly endHooks = new Set<(reason: SessionEndReason) => void>();
  private endReason: SessionEndReason | undefined;

  constructor(
    /** Never logged: with its owner's credentials it names the session on every tunnel stream. */
    readonly id: string,
    /** Names the session in logs, e.g. `#12`. */
    readonly tag: string,
    readonly client: ClientIdentity,
    public expiresAt: number,
    readonly allowances: SessionAllowances,
    /** The HTTP/2 connection it arrived on, counted against `sessionsPerConnection`. */
    readonly connection: object | undefined,
    /** Who created it (client-auth.ts): only requests authenticated as the same identity may use it. */
    readonly owner: string,
  ) {}

  /**
   * Runs `hook` when the session ends (at once if it already has: a flow dialed while its session ended must
   * not outlive it); returns a function that removes it.
   */
  onEnd(hook: (reason: SessionEndReason) => void): () => void {
    if (this.endReason !== undefined) {
      hook(this.endReason);
      return () => undefined;
    }
    this.endHooks.add(hook);
    return () => this.endHooks.delete(hook);
  }

  end(reason: SessionEndReason): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    const hooks = [...this.endHooks];
    this.endHooks.clear();
    for (const hook of hooks) hook(reason);
  }
}

export class SessionRegistry extends EventEmitter<{ ended: [session: ClientSession, reason: SessionEndReason] }> {
  private readonly sessions = new Map<string, ClientSession>();
  /** Live sessions per connection they arrived on. */
  private readonly perConnection = new Map<object, number>();
  private serial = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly limits: SessionLimits = DEFAULT_LIMITS,
  ) {
    super();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Sweeps expired sessions every quarter TTL until `stop`. */
  start(): void {
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(10, this.ttlMs / 4));
    this.sweeper.unref();
  }

  /** A new session of `owner` (client-auth.ts); throws LimitError when the manager or this connection holds as many as it may. */
  arrive(client: ClientIdentity, owner: string, connection?: object): ClientSession {
    // Expired sessions no longer count against the caps.
    this.sweep();
    if (this.sessions.size >= this.limits.sessions) {
      throw new LimitError(`The traffic manager holds its limit of ${this.limits.sessions} sessions; try again later.`);
    }
    const onConnection = connection === undefined ? 0 : (this.perConnection.get(connection) ?? 0);
    if (onConnection >= this.limits.sessionsPerConnection) {
      throw new LimitError(
        `This connection holds its limit of ${this.limits.sessionsPerConnection} sessions: depart from one before arriving again.`,
      );
    }
    const tag = `#${++this.serial}`;
    const session = new ClientSession(randomUUID(), tag, client, this.now() + this.ttlMs, sessionAllowances(this.limits), connection, owner);
    this.sessions.set(session.id, session);
    if (connection !== undefined) this.perConnection.set(connection, onConnection + 1);
    return session;
  }

  /** The live session with this id; an expired one is ended on the spot. */
  get(id: string): ClientSession | undefined {
    const session = this.sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.now()) {
      this.finish(session, 'expired');
      return undefined;
    }
    return session;
  }

  /** The live session with this id if `owner` created it; another identity's session looks unknown. */
  owned(id: string, owner: string): ClientSession | undefined {
    const session = this.get(id);
    return session?.owner === owner ? session : undefined;
  }

  /** Extends the owner's session by one TTL; false when it is unknown, already expired, or another's. */
  remain(id: string, owner: string): boolean {
    const session = this.owned(id, owner);
    if (session === undefined) return false;
    session.expiresAt = this.now() + this.ttlMs;
    return true;
  }

  depart(id: string, owner: string): boolean {
    const session = this.sessions.get(id);
    if (session?.owner !== owner) return false;
    this.finish(session, 'departed');
    return true;
  }

  sweep(): void {
    const now = this.now();
    for (const session of this.sessions.values()) if (session.expiresAt <= now) this.finish(session, 'expired');
  }

  /** Ends every session and the sweeper. */
  stop(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const session of this.sessions.values()) this.finish(session, 'shutdown');
  }

  private finish(session: ClientSession, reason: SessionEndReason): void {
    this.sessions.delete(session.id);
    const connection = session.connection;
    if (connection !== undefined) {
      const left = (this.perConnection.get(connection) ?? 1) - 1;
      if (left > 0) this.perConnection.set(connection, left);
      else this.perConnection.delete(connection);
    }
    session.end(reason);
    this.emit('ended', session, reason);
  }
}
