// The wire contract between the tunnel client and the traffic manager: header names, paths, and how a failed
// stream says why. Both sides import this file, so the two can only disagree by a version skew.

import type { TunnelErrorCode } from './tunnel-error.js';

/** Carries the session id on every tunnel stream and DNS query. */
export const SESSION_HEADER = 'kubetun-session';
/** Why a CONNECT or DNS request failed: one of the `WireErrorReason` values. */
export const ERROR_HEADER = 'kubetun-error';
/** A sentence for the user saying what failed. */
export const ERROR_MESSAGE_HEADER = 'kubetun-error-message';

export const DNS_QUERY_PATH = '/dns-query';
export const DNS_MESSAGE_TYPE = 'application/dns-message';
export const CONNECT_UDP_PROTOCOL = 'connect-udp';
const CONNECT_UDP_PREFIX = '/.well-known/masque/udp/';

/** HTTP/2 settings both ends use: big windows carry ~1.5 GiB/s per connection (measured) instead of ~1.0. */
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
