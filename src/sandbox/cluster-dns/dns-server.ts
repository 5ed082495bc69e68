// The cluster DNS's sockets: UDP and TCP (RFC 1035 §4.2, RFC 7766) on each listen address. Questions for the
// cluster are answered from the index; everything else is forwarded to the upstream resolver over the transport
// the client used, byte for byte, as CoreDNS's `forward . /etc/resolv.conf` does.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildDnsMessage,
  DnsFlag,
  DnsFormatError,
  DnsRcode,
  DnsType,
  errorReply,
  parseDnsMessage,
  type DnsMessage,
  type DnsQuestion,
  type DnsRecord,
} from '../../dns/dns-message.js';
import { DnsFrameReader, frameDnsMessage } from '../../dns/dns-framing.js';
import { exchangeOverTcp, exchangeOverUdp, isTruncated } from '../../dns/dns-exchange.js';
import { silentLogger, type Logger } from '../../log/logger.js';
import { answerQuestion, type DnsIndex, type LocalAnswer } from './dns-index.js';
import { parseClusterName } from './names.js';

export interface Upstream {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  /** Addresses to listen on (UDP and TCP each). */
  listen: readonly string[];
  port: number;
  upstream: Upstream;
  /** The current index; null until the first lists have arrived. */
  index: () => DnsIndex | null;
  /** Resolves when the first index exists: a cluster question waits for it a little, then gets SERVFAIL. */
  indexed: Promise<void>;
  /** The cluster domain, for SERVFAIL before the first index. */
  domain: string[];
  upstreamTimeoutMs?: number;
  log?: Logger;
}

export interface DnsServer {
  close(): Promise<void>;
}

/** A DNS server error users can hit: what was wrong and what to do. */
export class DnsServerError extends Error {
  override readonly name = 'DnsServerError';
}

const UDP_DEFAULT_LIMIT = 512;
/** What we say we accept over UDP with EDNS (the DNS flag day 2020 value). */
const EDNS_UDP_SIZE = 1232;
const TCP_IDLE_MS = 10_000;
const MAX_CNAME_CHAIN = 8;
/** How long a cluster question waits for the first index (CoreDNS waits up to 5 s; clients retry after that). */
const INDEX_WAIT_MS = 2_000;

type Transport = 'udp' | 'tcp';

function udpLimit(query: DnsMessage): number {
  const opt = query.additionals.find((r) => r.type === DnsType.OPT);
  return opt === undefined ? UDP_DEFAULT_LIMIT : Math.max(UDP_DEFAULT_LIMIT, Math.min(opt.class, EDNS_UDP_SIZE));
}

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const log = options.log ?? silentLogger;
  const timeoutMs = options.upstreamTimeoutMs ?? 2_000;
  const upstreamName = `${options.upstream.address}:${options.upstream.port}`;
  const upstream = { ip: options.upstream.address, port: options.upstream.port };
  const forward = (query: Buffer, transport: Transport): Promise<Buffer> =>
    (transport === 'udp' ? exchangeOverUdp : exchangeOverTcp)(upstream, query, timeoutMs);

  /** The records an ExternalName's target has: from the index when it is a cluster name, else from upstream. */
  const chase = async (index: DnsIndex, question: DnsQuestion, depth: number): Promise<DnsRecord[]> => {
    if (depth >= MAX_CNAME_CHAIN) return [];
    const local = answerQuestion(index, question);
    if (local !== null) return [...local.answers, ...(local.chase === undefined ? [] : await chase(index, local.chase, depth + 1))];
    const query = buildDnsMessage({ id: randomInt(0x10000), flags: DnsFlag.RD, questions: [question], answers: [], authorities: [], additionals: [] });
    let reply = await forward(query, 'udp');
    if (isTruncated(reply)) reply = await forward(query, 'tcp');
    return parseDnsMessage(reply).answers;
  };

  const localReply = async (index: DnsIndex, query: DnsMessage, answer: LocalAnswer, transport: Transport): Promise<Buffer> => {
    const answers = [...answer.answers];
    if (answer.chase !== undefined) {
      try {
        answers.push(...(await chase(index, answer.chase, 1)));
      } catch (error) {
        // The CNAME alone still lets a client resolve the target itself.
        log.warn('cannot resolve an ExternalName target', { target: answer.chase.name.join('.'), error: (error as Error).message });
      }
    }
    const edns = query.additionals.some((r) => r.type === DnsType.OPT);
    const opt: DnsRecord[] = edns ? [{ name: [], type: DnsType.OPT, class: EDNS_UDP_SIZE, ttl: 0, data: Buffer.alloc(0) }] : [];
    const flags = DnsFlag.QR | DnsFlag.AA | (query.flags & DnsFlag.RD) | DnsFlag.RA | answer.rcode;
    const reply = buildDnsMessage({ id: query.id, flags, questions: query.questions, answers, authorities: answer.authorities, additionals: [...answer.additionals, ...opt] });
    if (transport === 'tcp' || reply.length <= udpLimit(query)) return reply;
    // Too big for this client's UDP: say so, and it asks again over TCP.
    return buildDnsMessage({ id: query.id, flags: flags | DnsFlag.TC, questions: query.questions, answers: [], authorities: [], additionals: opt });
  };

  /** The reply to one query, or null to drop it (not even a header to answer). */
  const handle = async (bytes: Buffer, transport: Transport): Promise<Buffer | null> => {
    let query: DnsMessage;
    try {
      query = parseDnsMessage(bytes);
    } catch (error) {
      if (!(error instanceof DnsFormatError) || bytes.length < 12) return null;
      return errorReply({ id: bytes.readUInt16BE(0), flags: bytes.readUInt16BE(2), questions: [], answers: [], authorities: [], additionals: [] }, DnsRcode.FORMERR);
    }
    if ((query.flags & DnsFlag.QR) !== 0) return null;
    const question = query.questions[0];
    if (query.questions.length !== 1 || question === undefined) return errorReply(query, DnsRcode.FORMERR);
    let index = options.index();
    if (index === null && parseClusterName(question.name, options.domain) !== 'outside') {
      await Promise.race([options.indexed, sleep(INDEX_WAIT_MS)]);
      index = options.index();
      if (index === null) return errorReply(query, DnsRcode.SERVFAIL);
    }
    if (index !== null) {
      const answer = answerQuestion(index, question);
      if (answer !== null) return localReply(index, query, answer, transport);
    }
    try {
      return await forward(bytes, transport);
    } catch (error) {
      log.warn('upstream resolver failed', { upstream: upstreamName, name: question.name.join('.'), error: (error as Error).message });
      return errorReply(query, DnsRcode.SERVFAIL);
    }
  };

  const udpSockets: UdpSocket[] = [];
  const tcpServers: Server[] = [];
  const connections = new Set<Socket>();
  const close = async (): Promise<void> => {
    for (const s of udpSockets) {
      try {
        s.close();
      } catch {
        // Never bound (its bind failed): nothing to close.
      }
    }
    for (const c of connections) c.destroy();
    await Promise.all(tcpServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  };

  const listenError = (transport: Transport, address: string, error: NodeJS.ErrnoException): DnsServerError => {
    const where = `${transport.toUpperCase()} ${isIPv6(address) ? `[${address}]` : address}:${options.port}`;
    const why =
      error.code === 'EADDRNOTAVAIL'
        ? 'that address is not one of this host: pass --listen with an address of an interface here'
        : error.code === 'EADDRINUSE'
          ? 'another server already listens there: stop it or use another --listen / --port'
          : error.code === 'EACCES'
            ? 'ports below 1024 need root (or CAP_NET_BIND_SERVICE): run as root or pass --port'
            : error.message;
    return new DnsServerError(`cannot listen on ${where}: ${why}`);
  };

  try {
    for (const address of options.listen) {
      // Only the address given: `::` must not also take IPv4, which 0.0.0.0 listens for.
      const udp = createSocket(isIPv6(address) ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
      udpSockets.push(udp);
      await new Promise<void>((resolve, reject) => {
        udp.once('error', (e) => reject(listenError('udp', address, e)));
        udp.bind(options.port, address, () => resolve());
      });
      udp.on('error', (error) => log.warn('UDP socket error', { address, error: error.message }));
      udp.on('message', (bytes, from) => {
        void handle(bytes, 'udp').then((reply) => {
          if (reply !== null) udp.send(reply, from.port, from.address);
        });
      });

      const tcp = createServer((socket) => {
        connections.add(socket);
        socket.once('close', () => connections.delete(socket));
        socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
        socket.on('error', () => undefined);
        const frames = new DnsFrameReader();
        socket.on('data', (chunk: Buffer) => {
          frames.push(chunk);
          for (let message = frames.next(); message !== null; message = frames.next()) {
            void handle(message, 'tcp').then((reply) => {
              if (reply !== null && !socket.destroyed) socket.write(frameDnsMessage(reply));
            });
          }
        });
      });
      tcpServers.push(tcp);
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', (e) => reject(listenError('tcp', address, e)));
        tcp.listen({ port: options.port, host: address, ipv6Only: isIPv6(address) }, () => resolve());
      });
    }
  } catch (error) {
    await close();
    throw error;
  }
  log.info('serving DNS', { listen: options.listen, port: options.port, upstream: upstreamName });
  return { close };
}
