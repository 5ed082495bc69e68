// One DNS query to one server, over UDP or over TCP (RFC 1035 framing: a two-byte length first), each on a socket
// of its own. The callers decide the order: UDP first, TCP when the answer is truncated (RFC 7766).

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { DnsFrameReader, frameDnsMessage } from './dns-framing.js';
import { DnsFlag } from './dns-message.js';

export class DnsExchangeError extends Error {
  readonly code = 'DNS_UNANSWERED';
  constructor(message: string) {
    super(message);
    this.name = 'DnsExchangeError';
  }
}

export interface DnsServerEndpoint {
  ip: string;
  port: number;
}

const named = (server: DnsServerEndpoint): string => (net.isIPv6(server.ip) ? `[${server.ip}]:${server.port}` : `${server.ip}:${server.port}`);

/** Whether an answer says it was cut short (TC), so the question must be asked again over TCP. */
export function isTruncated(answer: Buffer): boolean {
  return (answer.readUInt16BE(2) & DnsFlag.TC) !== 0;
}

/** The first UDP answer that carries the query's id; rejects with DnsExchangeError. */
export function exchangeOverUdp(server: DnsServerEndpoint, query: Buffer, timeoutMs: number): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  const socket = dgram.createSocket(net.isIPv6(server.ip) ? 'udp6' : 'udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const finish = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new DnsExchangeError(`the DNS server ${named(server)} did not answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (error) => finish(new DnsExchangeError(`asking the DNS server ${named(server)} failed: ${error.message}`)));
    // A late answer to another query is not ours.
    socket.on('message', (answer) => {
      if (answer.length >= 12 && answer.readUInt16BE(0) === id) finish(undefined, answer);
    });
    // A failed connect goes to this callback, not to 'error'; sending on the unconnected socket would throw.
    socket.connect(server.port, server.ip, (error?: Error) => {
      if (error) finish(new DnsExchangeError(`asking the DNS server ${named(server)} failed: ${error.message}`));
      else socket.send(query);
    });
  });
}

/** The answer over TCP; rejects with DnsExchangeError. */
export function exchangeOverTcp(server: DnsServerEndpoint, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = net.createConnection({ host: server.ip, port: server.port });
    const frames = new DnsFrameReader();
    const finish = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new DnsExchangeError(`the DNS server ${named(server)} did not answer over TCP within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (error) => finish(new DnsExchangeError(`asking the DNS server ${named(server)} over TCP failed: ${error.message}`)));
    socket.on('data', (chunk: Buffer) => {
      frames.push(chunk);
      const answer = frames.next();
      if (answer !== null) finish(undefined, answer);
    });
    socket.on('end', () => finish(new DnsExchangeError(`the DNS server ${named(server)} closed the TCP connection without an answer`)));
    socket.end(frameDnsMessage(query));
  });
}
