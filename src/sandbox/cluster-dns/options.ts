// Where the cluster DNS gets its upstream resolver when not told.

import { isIP } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { parseResolvConf } from '../../dns/resolv-conf.js';
import type { Upstream } from './dns-server.js';

/** `10.0.0.1`, `10.0.0.1:5353`, `fd00::1`, `[fd00::1]:5353` → address and port (53 by default). */
export function parseUpstream(text: string): Upstream {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([^:]+)(?::(\d+))?$/.exec(text);
  const [address, port] = bracketed ? [bracketed[1]!, bracketed[2]] : plain ? [plain[1]!, plain[2]] : [text, undefined];
  const number = port === undefined ? 53 : Number(port);
  if (isIP(address) === 0 || !Number.isInteger(number) || number < 1 || number > 65535) {
    throw new InvalidArgumentError(`"${text}" is not an upstream resolver: use IP or IP:PORT ([IPv6]:PORT).`);
  }
  return { address, port: number };
}

/** The first nameserver of a resolv.conf, as the upstream. */
export function upstreamFromResolvConf(text: string, file = '/etc/resolv.conf'): Upstream {
  const first = parseResolvConf(text).nameservers.find((ns) => isIP(ns.replace(/%.*$/, '')) !== 0);
  if (first === undefined) throw new Error(`${file} names no nameserver: pass --upstream IP[:PORT]`);
  return { address: first.replace(/%.*$/, ''), port: 53 };
}
