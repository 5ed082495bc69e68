// Client sessions: created on arrival, kept alive by Remain within the TTL, ended by Depart or expiry. Ending a
// session closes what hangs off it (tunnel streams, cluster info watches) through its end hooks. A session belongs
// to the authenticated identity that created it: its id alone is no credential.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

export interface ClientIdentity {
  name: string;
  namespace: string;
  hostname: string;
  version: string;
}

export type SessionEndReason = 'departed' | 'expired' | 'shutdown';

export class ClientSession {
  private readonly endHooks = new Set<(reason: SessionEndReason) => void>();
  private endReason: SessionEndReason | undefined;

  constructor(
    readonly id: string,
    readonly client: ClientIdentity,
    public expiresAt: number,
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
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
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

  arrive(client: ClientIdentity, owner: string): ClientSession {
    const session = new ClientSession(randomUUID(), client, this.now() + this.ttlMs, owner);
    this.sessions.set(session.id, session);
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
    session.end(reason);
    this.emit('ended', session, reason);
  }
}
