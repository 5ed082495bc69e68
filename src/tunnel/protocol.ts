// The wire contract between the tunnel client and the traffic manager: header names, paths, and how a failed
// stream says why. Both sides import this file, so the two can only disagree by a version skew.

import type { TunnelErrorCode } from './tunnel-error.js';

/** Carries the session id on every tunnel stream and DNS query. */
export const SESSION_HEADER = 'kubetun-session';
/** Why a CONNECT or DNS request failed: one of the `WireErrorReason` values. */
export const ERROR_HEADER = 'kubetun-error';
/** A sentence for the user saying what failed. */
export const ERROR_MESSAGE_HEADER = 'kubetun-error-message';

/** A header's value as one string: the first of a repeated header. */
export function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export const DNS_QUERY_PATH = '/dns-query';
export const DNS_MESSAGE_TYPE = 'application/dns-message';
/**
 * The DNS stream: one long-lived POST per connection whose body carries queries and whose response carries their
 * answers, each message framed as over TCP (RFC 1035 §4.2.2). Answers come as they are ready, in any order, and
 * are matched by message ID, so a lookup costs a DATA frame each way instead of a stream. A manager without it
 * answers 404, and the client then sends each query on a stream of its own (DNS_QUERY_PATH).
 */
export const DNS_STREAM_PATH = '/dns-stream';
export const DNS_STREAM_TYPE = 'application/vnd.kubetun.dns-stream';
export const CONNECT_UDP_PROTOCOL = 'connect-udp';
const CONNECT_UDP_PREFIX = '/.well-known/masque/udp/';

/**
 * Intercepts. An agent's connection (or HTTP exchange) for a client reaches the manager as an extended CONNECT
 * stream (:protocol AGENT_PROTOCOL, :path agentPath(intercept id), AGENT_HEADER, SOURCE_HEADER); the manager
 * announces it on the client's WatchDials; the client answers with its own stream (:protocol INTERCEPT_PROTOCOL,
 * :path interceptPath(dial id), SESSION_HEADER), and the manager splices the two. A client whose local dial failed
 * sends its stream with ERROR_HEADER (a WireErrorReason) and ERROR_MESSAGE_HEADER, and ends it; the agent's stream
 * is then answered with that failure. UDP dials carry RFC 9297 datagram capsules both ways, as connect-udp does.
 */
export const INTERCEPT_PROTOCOL = 'kubetun-intercept';
export const AGENT_PROTOCOL = 'kubetun-agent';
/** The agent id the manager gave the agent (AgentDirective.agent_id). */
export const AGENT_HEADER = 'kubetun-agent';
/** The cluster client's address, `ip:port` (IPv6 in brackets). */
export const SOURCE_HEADER = 'kubetun-source';
/** `1` on a wiretap copy. */
export const MIRROR_HEADER = 'kubetun-mirror';
/** How long the manager holds an agent's stream for the client's answer before failing it with `timeout`. */
export const DIAL_CLAIM_TIMEOUT_MS = 10_000;

const INTERCEPT_PREFIX = '/intercept/';
const AGENT_PREFIX = '/agent/';
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export const interceptPath = (dialId: string): string => `${INTERCEPT_PREFIX}${dialId}`;
export const agentPath = (interceptId: string): string => `${AGENT_PREFIX}${interceptId}`;

/** The id in an intercept or agent stream's :path; undefined when the path is not of that form. */
export function parseIdPath(path: string, kind: 'intercept' | 'agent'): string | undefined {
  const prefix = kind === 'intercept' ? INTERCEPT_PREFIX : AGENT_PREFIX;
  if (!path.startsWith(prefix)) return undefined;
  const id = path.slice(prefix.length);
  return ID.test(id) ? id : undefined;
}

/**
 * HTTP/2 settings both ends use: big windows carry ~1.5 GiB/s per connection (measured) instead of ~1.0. Between
 * client and manager the connection window starts smaller and grows to this one as the path needs
 * (receive-window.ts); agents, next to the manager, use it from the start.
 */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
export const CONNECTION_WINDOW_BYTES = 32 * 1024 * 1024;
/**
 * The tunnel client's nghttp2 memory cap in MiB; the default (10) is below one full connection window. The
 * manager has its own, per client connection (manager-limits.ts).
 */
export const SESSION_MEMORY_MIB = 256;

export type WireErrorReason = 'refused' | 'unreachable' | 'timeout' | 'forbidden' | 'session' | 'limit';

/** The HTTP status a failed CONNECT answers with, per reason (RFC 9209 style: 502 for the next hop, 504 for time). */
export const STATUS_FOR_REASON: Readonly<Record<WireErrorReason, number>> = {
  refused: 502,
  unreachable: 502,
  timeout: 504,
  forbidden: 403,
  session: 403,
  limit: 429,
};

const CODE_FOR_REASON: Readonly<Record<WireErrorReason, TunnelErrorCode>> = {
  refused: 'REFUSED',
  unreachable: 'UNREACHABLE',
  timeout: 'TIMEOUT',
  forbidden: 'FORBIDDEN',
  session: 'SESSION',
  limit: 'LIMIT',
};

/** The client's error code for a failed response; an unknown or absent reason is read from the status. */
export function errorCodeFor(status: number, reason: string | undefined): TunnelErrorCode {
  if (reason !== undefined && reason in CODE_FOR_REASON) return CODE_FOR_REASON[reason as WireErrorReason];
  if (status === 504) return 'TIMEOUT';
  if (status === 403) return 'FORBIDDEN';
  if (status === 429) return 'LIMIT';
  if (status === 502) return 'UNREACHABLE';
  return 'CONNECTION';
}

/** `host:port` for a CONNECT `:authority`, with IPv6 in brackets (RFC 3986 §3.2.2). */
export function formatAuthority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface Target {
  host: string;
  port: number;
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Reads a CONNECT `:authority`; undefined when it is not `host:port` with a port from 1 to 65535. */
export function parseAuthority(authority: string): Target | undefined {
  const colon = authority.lastIndexOf(':');
  if (colon <= 0) return undefined;
  let host = authority.slice(0, colon);
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return undefined;
    host = host.slice(1, -1);
  } else if (host.includes(':')) {
    return undefined;
  }
  const port = parsePort(authority.slice(colon + 1));
  return port === undefined || host === '' ? undefined : { host, port };
}

/** The RFC 9298 default URI template path `/.well-known/masque/udp/{target_host}/{target_port}/`. */
export function connectUdpPath(host: string, port: number): string {
  return `${CONNECT_UDP_PREFIX}${encodeURIComponent(host)}/${port}/`;
}

/** Reads a connect-udp path; undefined when it does not follow the template. */
export function parseConnectUdpPath(path: string): Target | undefined {
  if (!path.startsWith(CONNECT_UDP_PREFIX)) return undefined;
  const parts = path.slice(CONNECT_UDP_PREFIX.length).split('/');
  if (parts.length !== 3 || parts[2] !== '') return undefined;
  let host: string;
  try {
    host = decodeURIComponent(parts[0]!);
  } catch {
    return undefined;
  }
  const port = parsePort(parts[1]!);
  return port === undefined || host === '' ? undefined : { host, port };
}
