// Link, address and route configuration through iproute2. `ip` is spawned directly (execFile, no shell); every
// function takes an optional network namespace name, which becomes `ip -n NAME …`.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';

export type LinkConfigErrorCode = 'BAD_MTU' | 'BAD_ARGUMENT' | 'EXISTS' | 'NOT_FOUND' | 'COMMAND_FAILED';

export class LinkConfigError extends Error {
  override readonly name = 'LinkConfigError';
  constructor(
    readonly code: LinkConfigErrorCode,
    message: string,
    /** The ip command line that failed, when one ran. */
    readonly command?: readonly string[],
  ) {
    super(message);
  }
}

export interface RouteEntry {
  family: 4 | 6;
  /** Always a CIDR: `default` becomes 0.0.0.0/0 or ::/0, a host route gets /32 or /128. */
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  /** Set by ip for routes other than unicast (blackhole, unreachable, local…). */
  type?: string;
  /** Set by ip for tables other than main (with `table all`); absent means main. */
  table?: string;
}

export const MIN_MTU = 68;
export const MIN_MTU_IPV6 = 1280;
export const MAX_MTU = 65535;

const IP_TIMEOUT_MS = 10_000;
const IP_BINARY = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

/** Throws LinkConfigError BAD_MTU unless mtu is usable (IPv6 links, the default, need at least 1280). */
export function validateMtu(mtu: number, options: { ipv6?: boolean } = {}): void {
  const ipv6 = options.ipv6 ?? true;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new LinkConfigError('BAD_MTU', `MTU ${mtu} is not usable: give an integer from ${MIN_MTU} to ${MAX_MTU}`);
  }
  if (ipv6 && mtu < MIN_MTU_IPV6) {
    throw new LinkConfigError(
      'BAD_MTU',
      `MTU ${mtu} is too small for IPv6, which needs at least ${MIN_MTU_IPV6}: raise it, or pass { ipv6: false } for an IPv4-only link`,
    );
  }
}

export async function setMtu(name: string, mtu: number, netns?: string, options: { ipv6?: boolean } = {}): Promise<void> {
  validateMtu(mtu, options);
  await runIp(['link', 'set', 'dev', checkLinkName(name), 'mtu', String(mtu)], netns);
}

export async function setLinkUp(name: string, netns?: string): Promise<void> {
  await runIp(['link', 'set', 'dev', checkLinkName(name), 'up'], netns);
}

export async function addAddress(name: string, cidr: string, netns?: string): Promise<void> {
  await runIp(['address', 'add', checkCidr(cidr), 'dev', checkLinkName(name)], netns);
}

export async function addRoute(cidr: string, dev: string, netns?: string): Promise<void> {
  await runIp(['route', 'add', checkCidr(cidr), 'dev', checkLinkName(dev)], netns);
}

export async function deleteRoute(cidr: string, dev: string, netns?: string): Promise<void> {
  await runIp(['route', 'del', checkCidr(cidr), 'dev', checkLinkName(dev)], netns);
}

export async function setTxQueueLen(name: string, length: number, netns?: string): Promise<void> {
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff) {
    throw new LinkConfigError('BAD_ARGUMENT', `transmit queue length ${length} is not a non-negative 32-bit integer`);
  }
  await runIp(['link', 'set', 'dev', checkLinkName(name), 'txqueuelen', String(length)], netns);
}

/**
 * The routes the kernel may choose from: those of every table an `ip rule` looks up (main, and a VPN's own table
 * selected by a fwmark rule), both families unless one is given. Tables no rule selects are left out.
 */
export async function listRoutes(netns?: string, family?: 4 | 6): Promise<RouteEntry[]> {
  const families: (4 | 6)[] = family === undefined ? [4, 6] : [family];
  const routes: RouteEntry[] = [];
  for (const f of families) {
    const tables = parseRuleTables(await runIp(['-j', `-${f}`, 'rule', 'show'], netns));
    const stdout = await runIp(['-j', `-${f}`, 'route', 'show', 'table', 'all'], netns);
    routes.push(...parseRoutes(stdout, f).filter((r) => tables.has(r.table ?? 'main')));
  }
  return routes;
}

/** The tables the rules of `ip -j rule show` look up (names as ip prints them: main, local, 51820…). */
export function parseRuleTables(json: string): Set<string> {
  const text = json.trim();
  const raw = text === '' ? [] : (JSON.parse(text) as unknown);
  if (!Array.isArray(raw)) throw new LinkConfigError('COMMAND_FAILED', 'ip -j rule printed something other than a list');
  return new Set(raw.flatMap((r: Record<string, unknown>) => (typeof r.table === 'string' ? [r.table] : [])));
}

/** Parses the output of `ip -j -4|-6 route show`. */
export function parseRoutes(json: string, family: 4 | 6): RouteEntry[] {
  const text = json.trim();
  if (text === '') return [];
  const raw = JSON.parse(text) as unknown;
  if (!Array.isArray(raw)) throw new LinkConfigError('COMMAND_FAILED', 'ip -j route printed something other than a list');
  return raw.map((r: Record<string, unknown>) => {
    const entry: RouteEntry = { family, dst: normalizeDst(String(r.dst ?? 'default'), family) };
    if (typeof r.dev === 'string') entry.dev = r.dev;
    if (typeof r.gateway === 'string') entry.gateway = r.gateway;
    if (typeof r.protocol === 'string') entry.protocol = r.protocol;
    if (typeof r.scope === 'string') entry.scope = r.scope;
    if (typeof r.prefsrc === 'string') entry.prefsrc = r.prefsrc;
    if (typeof r.metric === 'number') entry.metric = r.metric;
    if (typeof r.type === 'string') entry.type = r.type;
    if (typeof r.table === 'string') entry.table = r.table;
    return entry;
  });
}

function normalizeDst(dst: string, family: 4 | 6): string {
  if (dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  if (dst.includes('/')) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}

/** Runs `ip [-n netns] args…` and returns its stdout; failures carry ip's stderr and the command line. */
export function runIp(args: readonly string[], netns?: string): Promise<string> {
  const argv = netns === undefined ? [...args] : ['-n', checkNetnsName(netns), ...args];
  const command = [IP_BINARY, ...argv];
  return new Promise((resolve, reject) => {
    execFile(IP_BINARY, argv, { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) {
        resolve(stdout);
        return;
      }
      const line = command.join(' ');
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new LinkConfigError('COMMAND_FAILED', `cannot run ${IP_BINARY}: install iproute2`, command));
        return;
      }
      const detail = stderr.trim() || error.message;
      reject(new LinkConfigError(codeFor(detail), `${line} failed: ${detail}`, command));
    });
  });
}

function codeFor(stderr: string): LinkConfigErrorCode {
  if (/File exists/i.test(stderr)) return 'EXISTS';
  if (/No such process|Cannot find device|does not exist|No such file or directory/i.test(stderr)) return 'NOT_FOUND';
  return 'COMMAND_FAILED';
}

function checkLinkName(name: string): string {
  // The kernel's rule for interface names; also keeps a name from being read as an option.
  if (!/^[^/:\s-][^/:\s]{0,14}$/.test(name) || name === '.' || name === '..') {
    throw new LinkConfigError('BAD_ARGUMENT', `"${name}" is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)`);
  }
  return name;
}

function checkNetnsName(name: string): string {
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,199}$/.test(name) || name === '.' || name === '..') {
    throw new LinkConfigError('BAD_ARGUMENT', `"${name}" is not a valid network namespace name`);
  }
  return name;
}

function checkCidr(cidr: string): string {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  const prefix = slash < 0 ? undefined : cidr.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (family === 0 || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max))) {
    throw new LinkConfigError('BAD_ARGUMENT', `"${cidr}" is not an IP address or CIDR (like 10.96.0.0/12 or fd10:96::/112)`);
  }
  return cidr;
}
