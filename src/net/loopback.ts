// Whether a host names the loopback interface: where only this machine (or this pod, and port-forwards into it)
// can connect.

import { isIP } from 'node:net';
import { parseIp, parsePrefix, prefixContains } from '../netstack/wire/ip-address.js';

const LOOPBACK = [parsePrefix('127.0.0.0/8'), parsePrefix('::1/128'), parsePrefix('::ffff:127.0.0.0/104')];

/** An address literal in 127.0.0.0/8 or ::1 (IPv4-mapped too); a name is never taken for loopback. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 0) return false;
  const address = parseIp(bare);
  return LOOPBACK.some((prefix) => prefixContains(prefix, address));
}
