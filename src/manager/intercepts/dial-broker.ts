// Pairs an agent's stream with the intercepting client's: the agent's AGENT_PROTOCOL stream becomes a pending dial,
// announced on the owning session's WatchDials; the client answers with an INTERCEPT_PROTOCOL stream naming the
// dial (or the reason its local dial failed), and the two streams are spliced. Unanswered dials fail with
// `timeout` after the claim timeout, so a cluster client never hangs on a laptop that does not answer.

import { randomBytes } from 'node:crypto';
import { constants as http2constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { InterceptDialSchema } from '../../gen/kubetun/manager/v1/manager_pb.js';
import type { Logger } from '../../log/logger.js';
import { ERROR_HEADER, ERROR_MESSAGE_HEADER, MIRROR_HEADER, SOURCE_HEADER, STATUS_FOR_REASON, type WireErrorReason } from '../../tunnel/protocol.js';
import { admit, Allowance, LimitError, type ManagerLimits } from '../manager-limits.js';
import type { ClientSession } from '../session-registry.js';
import { answerFailure, headerSafe } from '../stream-answer.js';
import type { LiveAgent } from './agent-registry.js';
import type { InterceptRegistry } from './intercept-registry.js';
import { spliceStreams } from './stream-splice.js';

type DialInit = MessageInitShape<typeof InterceptDialSchema>;

export type DialLimits = Pick<ManagerLimits, 'pendingDialsPerSession' | 'pendingDials' | 'interceptStreamsPerSession' | 'interceptStreams' | 'dialWatchesPerSession'>;

interface PendingDial {
  agentStream: ServerHttp2Stream;
  session: ClientSession;
  interceptId: string;
  timer: NodeJS.Timeout;
  releasePending: () => void;
}

/** What one session draws from, and its queue of dials not yet handed to a WatchDials stream. */
interface SessionDials {
  pending: Allowance;
  streams: Allowance;
  watches: Allowance;
  queue: DialInit[];
  /** The WatchDials streams waiting for the next dial. */
  waiters: Set<() => void>;
}

function wakeWatchers(dials: SessionDials): void {
  const waiters = [...dials.waiters];
  dials.waiters.clear();
  for (const wake of waiters) wake();
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

export class DialBroker {
  private readonly dials = new Map<string, PendingDial>();
  private readonly sessions = new WeakMap<ClientSession, SessionDials>();
  private readonly pending: Allowance;
  private readonly streams: Allowance;

  constructor(
    private readonly intercepts: InterceptRegistry,
    private readonly limits: DialLimits,
    private readonly log: Logger,
    private readonly claimTimeoutMs: number,
  ) {
    this.pending = new Allowance('pending intercepted connections in all', limits.pendingDials);
    this.streams = new Allowance('intercepted streams in all', limits.interceptStreams);
  }

  private of(session: ClientSession): SessionDials {
    let dials = this.sessions.get(session);
    if (dials === undefined) {
      dials = {
        pending: new Allowance('pending intercepted connections per session', this.limits.pendingDialsPerSession),
        streams: new Allowance('intercepted streams per session', this.limits.interceptStreamsPerSession),
        watches: new Allowance('WatchDials streams per session', this.limits.dialWatchesPerSession),
        queue: [],
        waiters: new Set(),
      };
      this.sessions.set(session, dials);
    }
    return dials;
  }

  /** An agent's stream for intercept `interceptId`: announced to its client, failed if unanswered. */
  offer(stream: ServerHttp2Stream, agent: LiveAgent, interceptId: string, headers: IncomingHttpHeaders): void {
    if (!agent.wasTold(interceptId)) {
      answerFailure(stream, 'forbidden', 'This agent was not told of that intercept.');
      return;
    }
    const intercept = this.intercepts.get(interceptId);
    if (intercept === undefined) {
      answerFailure(stream, 'session', 'The intercept has ended: send the connection to the app.');
      return;
    }
    const session = intercept.session;
    const dials = this.of(session);
    const pending = admit(agent.pendingDials, dials.pending, this.pending);
    if (!pending.admitted) {
      answerFailure(stream, 'limit', pending.message);
      return;
    }
    const streamAdmission = admit(dials.streams, this.streams);
    if (!streamAdmission.admitted) {
      pending.release();
      answerFailure(stream, 'limit', streamAdmission.message);
      return;
    }
    stream.once('close', streamAdmission.release);
    intercept.requests++;
    const id = randomBytes(16).toString('base64url');
    const dial: PendingDial = {
      agentStream: stream,
      session,
      interceptId,
      releasePending: pending.release,
      timer: setTimeout(() => this.fail(id, 'timeout', `The intercepting client did not answer within ${this.claimTimeoutMs} ms.`), this.claimTimeoutMs),
    };
    this.dials.set(id, dial);
    // The agent gave up (its cluster client left) before the client answered.
    stream.once('close', () => this.forget(id));
    const removeEndHook = session.onEnd(() => this.fail(id, 'session', 'The intercepting client\'s session ended.'));
    stream.once('close', removeEndHook);
    // Dials that failed or were answered while queued go, so the queue stays within the pending caps.
    dials.queue = dials.queue.filter((queued) => this.dials.has(queued.id!));
    dials.queue.push({
      id,
      interceptId,
      protocol: intercept.port.protocol,
      source: headerSafe(header(headers, SOURCE_HEADER) ?? '').slice(0, 64),
      pod: agent.info.pod,
      containerPort: intercept.port.containerPort,
      mirror: header(headers, MIRROR_HEADER) === '1',
    });
    wakeWatchers(dials);
  }

  /** The client's stream answering dial `dialId` (its session already checked as the caller's). */
  claim(stream: ServerHttp2Stream, session: ClientSession, dialId: string, headers: IncomingHttpHeaders): void {
    const dial = this.dials.get(dialId);
    if (dial === undefined || dial.session !== session) {
      answerFailure(stream, 'timeout', 'No pending connection with this id: it was answered already, timed out, or is not yours.');
      return;
    }
    this.forget(dialId);
    const agentStream = dial.agentStream;
    if (agentStream.closed || agentStream.destroyed) {
      answerFailure(stream, 'refused', 'The cluster client left before the answer.');
      return;
    }
    const reason = header(headers, ERROR_HEADER);
    if (reason !== undefined) {
      const known = (Object.hasOwn(STATUS_FOR_REASON, reason) ? reason : 'refused') as WireErrorReason;
      answerFailure(agentStream, known, `The intercepting client: ${header(headers, ERROR_MESSAGE_HEADER) ?? 'its local dial failed'}`);
      if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: true });
      return;
    }
    agentStream.respond({ ':status': 200 });
    stream.respond({ ':status': 200 });
    spliceStreams(agentStream, stream, session);
  }

  /** Dials announced to the session as they come, until the signal or the session's end. */
  async *watch(session: ClientSession, signal: AbortSignal): AsyncGenerator<DialInit> {
    const dials = this.of(session);
    const admission = admit(dials.watches);
    if (!admission.admitted) throw new LimitError(admission.message);
    let ended = false;
    let wake: () => void = () => undefined;
    const wakeThis = (): void => wake();
    const removeEndHook = session.onEnd(() => {
      ended = true;
      wakeThis();
    });
    signal.addEventListener('abort', wakeThis);
    try {
      while (!ended && !signal.aborted) {
        const next = dials.queue.shift();
        if (next !== undefined) {
          // Skipped when it failed or was answered while queued.
          if (this.dials.has(next.id!)) yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          dials.waiters.add(resolve);
        });
        dials.waiters.delete(wake);
      }
    } finally {
      signal.removeEventListener('abort', wakeThis);
      dials.waiters.delete(wake);
      removeEndHook();
      admission.release();
    }
  }

  private fail(id: string, reason: WireErrorReason, message: string): void {
    const dial = this.dials.get(id);
    if (dial === undefined) return;
    this.forget(id);
    this.log.debug('intercepted connection failed', { reason, session: dial.session.tag });
    answerFailure(dial.agentStream, reason, message);
    if (!dial.agentStream.closed) dial.agentStream.close(http2constants.NGHTTP2_NO_ERROR);
  }

  private forget(id: string): void {
    const dial = this.dials.get(id);
    if (dial === undefined) return;
    this.dials.delete(id);
    clearTimeout(dial.timer);
    dial.releasePending();
  }
}
