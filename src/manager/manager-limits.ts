// What one client, and all of them together, may hold in the traffic manager: connections, sessions, flows,
// DNS queries in flight, and the HTTP/2 and RPC limits that bound a single request. Counts are checked when a
// thing is opened and given back when it closes, so a flood is refused with a sentence naming the cap instead
// of taking the manager's memory (and every other client) down.

import type { ServerOptions } from 'node:http2';
import { STREAM_WINDOW_BYTES } from '../tunnel/protocol.js';

export interface ManagerLimits {
  /** Client connections at once (HTTP/2 connections, including ones still in the TLS handshake). */
  connections: number;
  /** Live sessions, all clients together. */
  sessions: number;
  /** Live sessions created on one HTTP/2 connection (a user daemon arrives once per connect). */
  sessionsPerConnection: number;
  /** Open TCP flows (CONNECT streams, dialing included). */
  tcpFlows: number;
  tcpFlowsPerSession: number;
  /** Open UDP flows (connect-udp streams). */
  udpFlows: number;
  udpFlowsPerSession: number;
  /** DNS queries one session has in flight. */
  dnsQueriesPerSession: number;
  /** WatchClusterInfo streams one session has open (one is normal). */
  watchesPerSession: number;
  /** Intercepts one session holds. */
  interceptsPerSession: number;
  /** WatchDials streams one session has open (one is normal; two cover a reconnect). */
  dialWatchesPerSession: number;
  /** Traffic agents connected at once. */
  agents: number;
  /** Agent streams waiting for their client's answer: per agent, per intercepting session, and in all. */
  pendingDialsPerAgent: number;
  pendingDialsPerSession: number;
  pendingDials: number;
  /** Spliced intercept streams (agent and client stream joined), per intercepting session and in all. */
  interceptStreamsPerSession: number;
  interceptStreams: number;
}

/**
 * Numbers a developer does not reach (a browser keeps at most 256 sockets, a build a few dozen; the benchmark
 * holds 1,000 idle flows) and the manager's memory affords: an idle TCP flow costs ~21 KiB of RSS (2,000 took a
 * manager from 75 to 116 MiB, test/e2e/manager-limits.test.ts), so 4,000 fit in the Deployment's 256 MiB with room.
 */
export const DEFAULT_LIMITS: Readonly<ManagerLimits> = {
  connections: 512,
  sessions: 512,
  sessionsPerConnection: 8,
  tcpFlows: 4_000,
  tcpFlowsPerSession: 2_000,
  udpFlows: 1_024,
  udpFlowsPerSession: 256,
  dnsQueriesPerSession: 256,
  watchesPerSession: 8,
  interceptsPerSession: 16,
  dialWatchesPerSession: 2,
  agents: 1_024,
  pendingDialsPerAgent: 256,
  pendingDialsPerSession: 256,
  pendingDials: 2_048,
  interceptStreamsPerSession: 2_000,
  interceptStreams: 4_000,
};

/** The largest RPC message the manager reads; its own messages are a few hundred bytes. */
export const RPC_READ_MAX_BYTES = 64 * 1024;

/** The largest DNS message there is (RFC 1035 §4.2.2: a 16-bit length). */
export const DNS_MESSAGE_MAX_BYTES = 65_535;

/**
 * nghttp2's memory cap per client connection in MB: room for the whole 32 MiB connection window of unread
 * uploads plus stream state, well below the container's 256 MiB so that one connection cannot take it all.
 */
export const CONNECTION_MEMORY_MB = 48;

/** HTTP/2 streams at once on one connection: above a session's flows, DNS and RPCs together. */
export const MAX_STREAMS_PER_CONNECTION = 3_000;

/** Request headers are small (a CONNECT authority, a session id, RPC metadata); 16 KiB leaves room. */
export const MAX_HEADER_LIST_BYTES = 16 * 1024;
const MAX_HEADER_PAIRS = 64;

/** The server's HTTP/2 options that bound what one connection can make the manager hold. */
export function http2ServerLimits(): Pick<ServerOptions, 'maxSessionMemory' | 'maxHeaderListPairs' | 'settings'> {
  return {
    maxSessionMemory: CONNECTION_MEMORY_MB,
    maxHeaderListPairs: MAX_HEADER_PAIRS,
    settings: {
      enableConnectProtocol: true,
      initialWindowSize: STREAM_WINDOW_BYTES,
      maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION,
      maxHeaderListSize: MAX_HEADER_LIST_BYTES,
    },
  };
}

/** A count of things held with a ceiling; `what` names it in refusals ("TCP flows per session"). */
export class Allowance {
  private used = 0;

  constructor(
    readonly what: string,
    readonly limit: number,
  ) {}

  get inUse(): number {
    return this.used;
  }

  get full(): boolean {
    return this.used >= this.limit;
  }

  take(): void {
    this.used++;
  }

  giveBack(): void {
    if (this.used > 0) this.used--;
  }
}

export type Admission = { admitted: true; release: () => void } | { admitted: false; message: string };

/**
 * Takes one from every allowance, or from none when any is full (the refusal names the first full one).
 * `release` gives them back once, however often it is called.
 */
export function admit(...allowances: Allowance[]): Admission {
  const full = allowances.find((a) => a.full);
  if (full !== undefined) {
    return {
      admitted: false,
      message: `The traffic manager's limit of ${full.limit} ${full.what} is reached; close some and try again.`,
    };
  }
  for (const allowance of allowances) allowance.take();
  let released = false;
  return {
    admitted: true,
    release: () => {
      if (released) return;
      released = true;
      for (const allowance of allowances) allowance.giveBack();
    },
  };
}

/** What every session draws from together. */
export interface GlobalAllowances {
  tcpFlows: Allowance;
  udpFlows: Allowance;
}

export function globalAllowances(limits: ManagerLimits): GlobalAllowances {
  return {
    tcpFlows: new Allowance('TCP flows in all', limits.tcpFlows),
    udpFlows: new Allowance('UDP flows in all', limits.udpFlows),
  };
}

/** Thrown when a cap refuses something an RPC asked for. */
export class LimitError extends Error {
  readonly code = 'LIMIT';
  constructor(message: string) {
    super(message);
    this.name = 'LimitError';
  }
}
