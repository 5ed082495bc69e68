// IP addresses and prefixes as bytes: text forms (RFC 5952 for IPv6), equality, map keys, containment.

import { WireError, type IpAddress } from './reprs.js';

export interface IpPrefix {
  address: IpAddress;
  length: number;
}

function bad(text: string, why: string): WireError {
  return new WireError('UNSUPPORTED', `"${text}" is not an IP address or prefix: ${why}.`);
}

function formatIpv4(addr: IpAddress, from: number): string {
  return `${addr[from]}.${addr[from + 1]}.${addr[from + 2]}.${addr[from + 3]}`;
}

/** Dotted quad for IPv4; RFC 5952 text for IPv6 (lower case, longest zero run as "::", mapped IPv4 dotted). */
export function formatIp(addr: IpAddress): string {
  if (addr.length === 4) return formatIpv4(addr, 0);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${formatIpv4(addr, 12)}`;
  // The first longest run of at least two zero groups is compressed (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function parseIpv4Into(text: string, whole: string, out: Uint8Array, at: number): void {
  const parts = text.split('.');
  if (parts.length !== 4) throw bad(whole, 'an IPv4 address has four dotted numbers');
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    // Leading zeros are refused: some resolvers read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) {
      throw bad(whole, `"${part}" is not a number from 0 to 255`);
    }
    out[at + i] = Number(part);
  }
}

function parseGroups(text: string, whole: string): number[] {
  if (text === '') return [];
  return text.split(':').map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad(whole, `"${g}" is not a group of 1 to 4 hex digits`);
    return parseInt(g, 16);
  });
}

function parseIpv6(text: string): IpAddress {
  const out = new Uint8Array(16);
  let body = text;
  let tailWords = 0;
  const lastColon = body.lastIndexOf(':');
  if (body.indexOf('.', lastColon) >= 0) {
    // An embedded IPv4 address fills the last 32 bits.
    parseIpv4Into(body.slice(lastColon + 1), text, out, 12);
    body = body.slice(0, lastColon + 1);
    if (!body.endsWith('::')) body = body.slice(0, -1);
    tailWords = 2;
  }
  const halves = body.split('::');
  if (halves.length > 2) throw bad(text, '"::" may appear only once');
  const head = parseGroups(halves[0]!, text);
  const tail = halves.length === 2 ? parseGroups(halves[1]!, text) : [];
  const present = head.length + tail.length + tailWords;
  if (halves.length === 1 ? present !== 8 : present > 7) throw bad(text, 'an IPv6 address has eight groups');
  head.forEach((g, i) => {
    out[i * 2] = g >>> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  const tailStart = 8 - tailWords - tail.length;
  tail.forEach((g, i) => {
    out[(tailStart + i) * 2] = g >>> 8;
    out[(tailStart + i) * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Parses dotted IPv4 or any RFC 4291 IPv6 text form (zones such as "%eth0" are not accepted). */
export function parseIp(text: string): IpAddress {
  if (text.includes(':')) return parseIpv6(text);
  const out = new Uint8Array(4);
  parseIpv4Into(text, text, out, 0);
  return out;
}

export function ipEquals(a: IpAddress, b: IpAddress): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A string unique per address (2 UTF-16 units for IPv4, 8 for IPv6): cheaper than formatting. */
export function ipKey(addr: IpAddress): string {
  if (addr.length === 4) return String.fromCharCode((addr[0]! << 8) | addr[1]!, (addr[2]! << 8) | addr[3]!);
  let key = '';
  for (let i = 0; i < addr.length; i += 2) key += String.fromCharCode((addr[i]! << 8) | addr[i + 1]!);
  return key;
}

/** Parses "10.0.0.0/8" or "fd10::/64"; a bare address is a host prefix. Host bits are cleared. */
export function parsePrefix(text: string): IpPrefix {
  const slash = text.indexOf('/');
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  const bits = address.length * 8;
  let length = bits;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || Number(lengthText) > bits) {
      throw bad(text, `the prefix length must be a number from 0 to ${bits}`);
    }
    length = Number(lengthText);
  }
  return { address: maskAddress(address, length), length };
}

/** `address` with every bit after the first `length` cleared, in place; returns it. */
export function maskAddress(address: IpAddress, length: number): IpAddress {
  for (let i = 0; i < address.length; i++) address[i]! &= maskByte(length, i);
  return address;
}

/** The netmask's byte `index` for a prefix of `length` bits. */
function maskByte(length: number, index: number): number {
  const bits = length - index * 8;
  if (bits >= 8) return 0xff;
  if (bits <= 0) return 0;
  return (0xff << (8 - bits)) & 0xff;
}

export function prefixContains(prefix: IpPrefix, addr: IpAddress): boolean {
  if (prefix.address.length !== addr.length) return false;
  const whole = prefix.length >>> 3;
  for (let i = 0; i < whole; i++) if (prefix.address[i] !== addr[i]) return false;
  if (whole === addr.length) return true;
  const mask = maskByte(prefix.length, whole);
  return (addr[whole]! & mask) === (prefix.address[whole]! & mask);
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.address)}/${p.length}`;
}
