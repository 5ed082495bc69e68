// Sends one DNS query to the cluster DNS server: over UDP first, over TCP when the answer is truncated
// (RFC 7766). Each query has its own socket and a random id, so answers cannot be confused.

import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { DnsServerAddress } from './cluster-info-source.js';
import { DnsFlag } from '../dns/dns-message.js';

export class DnsExchangeError extends Error {
  readonly code = 'DNS_UNANSWERED';
  constructor(message: string) {
    super(message);
    this.name = 'DnsExchangeError';
  }
}

export type DnsExchange = (query: Buffer) => Promise<Buffer>;

export interface ClusterDnsClientOptions {
  /** The server to ask, read on every query so a cluster info change applies at once. */
  server: () => DnsServerAddress | undefined;
  /** Per attempt; UDP tries twice. Default 1,500 ms. */
  timeoutMs?: number;
}

/** A copy of `query` with a fresh id; answers must carry the same id. */
function withId(query: Buffer, id: number): Buffer {
  const copy = Buffer.from(query);
  copy.writeUInt16BE(id, 0);
  return copy;
}

function udpExchange(server: DnsServerAddress, query: Buffer, timeoutMs: number): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  const socket = dgram.createSocket(net.isIPv6(server.ip) ? 'udp6' : 'udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const finish = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () => finish(new DnsExchangeError(`the cluster DNS at ${server.ip} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (error) => finish(new DnsExchangeError(`asking the cluster DNS failed: ${error.message}`)));
    socket.on('message', (answer) => {
      if (answer.length >= 12 && answer.readUInt16BE(0) === id) finish(undefined, answer);
    });
    socket.connect(server.port, server.ip, () => socket.send(query));
  });
}

function tcpExchange(server: DnsServerAddress, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = net.createConnection({ host: server.ip, port: server.port });
    let received = Buffer.alloc(0);
    const finish = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () => finish(new DnsExchangeError(`the cluster DNS at ${server.ip} did not answer over TCP within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (error) => finish(new DnsExchangeError(`asking the cluster DNS over TCP failed: ${error.message}`)));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        finish(undefined, received.subarray(2, 2 + received.readUInt16BE(0)));
      }
    });
    socket.on('end', () => finish(new DnsExchangeError('the cluster DNS closed the TCP connection without an answer')));
  });
}

export function createClusterDnsClient(options: ClusterDnsClientOptions): DnsExchange {
  const timeoutMs = options.timeoutMs ?? 1500;
  return async (query) => {
    const server = options.server();
    if (server === undefined) throw new DnsExchangeError('the traffic manager has no cluster DNS server configured');
    const asked = withId(query, randomInt(0x10000));
    let answer: Buffer;
    try {
      answer = await udpExchange(server, asked, timeoutMs);
    } catch {
      answer = await udpExchange(server, asked, timeoutMs);
    }
    if ((answer.readUInt16BE(2) & DnsFlag.TC) !== 0) answer = await tcpExchange(server, asked, timeoutMs);
    return answer;
  };
}
