// The root daemon's DNS code path (StackDnsServer → DnsResolver → UpstreamResolver) served inside the stack on a
// real TUN device in a test namespace, with real clients run in the namespace: dig, getent (glibc), and node
// scripts for what no tool sends (a compression-chain attack, 10,000 pipelined queries never read). The upstream
// is a small DNS server on the test process's loopback; the traffic manager is a stand-in answering as a cluster
// with a Service `google` in a namespace `com` would.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { buildDnsMessage, DnsFlag, DnsRcode, DnsType, nameToText, parseDnsMessage, type DnsMessage, type DnsRecord } from '../../src/dns/dns-message.js';
import { createLogger } from '../../src/log/logger.js';
import type { TcpConnectRequest } from '../../src/netstack/stack.js';
import type { TcpSocket } from '../../src/netstack/tcp-socket.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { DnsResolver, MAX_UDP_ANSWER } from '../../src/rootd/dns/dns-resolver.js';
import { MAX_TCP_CONNECTIONS, MAX_TCP_QUERIES_IN_FLIGHT, MAX_TCP_QUEUED_BYTES, StackDnsServer, TCP_IDLE_TIMEOUT_MS } from '../../src/rootd/dns/dns-server.js';
import { UpstreamResolver } from '../../src/rootd/dns/upstream-resolver.js';
import { TunStack } from '../../src/rootd/tun-stack.js';
import { compressionChain } from '../dns/compression-chain.js';
import { TestNetns } from '../helpers/netns.js';

const ROOT = process.getuid?.() === 0;
const DNS_ADDRESS = '198.18.255.53';
const BIG_TXT_BYTES = 240 * 251;
const MID_TXT_BYTES = 16 * 251;

/** TXT RDATA of `strings` strings of 250 bytes. */
function txt(strings: number): Buffer {
  return Buffer.concat(Array.from({ length: strings }, (_, i) => Buffer.concat([Buffer.from([250]), Buffer.alloc(250, 97 + (i % 26))])));
}

function reply(query: DnsMessage, rcode: number, answers: DnsRecord[] = []): Buffer {
  return buildDnsMessage({ ...query, flags: DnsFlag.QR | DnsFlag.RD | DnsFlag.RA | rcode, answers, authorities: [], additionals: [] });
}

/** The upstream's zone: big.example (~60 KiB TXT), mid.example (4 KiB TXT), google.com A. */
function upstreamAnswer(query: DnsMessage): Buffer {
  const q = query.questions[0]!;
  const name = nameToText(q.name).toLowerCase();
  const record = (type: number, data: Buffer): DnsRecord => ({ name: q.name, type, class: 1, ttl: 300, data });
  if (name === 'big.example' && q.type === DnsType.TXT) return reply(query, 0, [record(DnsType.TXT, txt(240))]);
  if (name === 'mid.example' && q.type === DnsType.TXT) return reply(query, 0, [record(DnsType.TXT, txt(16))]);
  if (name === 'google.com' && q.type === DnsType.A) return reply(query, 0, [record(DnsType.A, Buffer.from([203, 0, 113, 7]))]);
  return reply(query, ['big.example', 'mid.example', 'google.com'].includes(name) ? 0 : DnsRcode.NXDOMAIN);
}

/** A plain DNS server on loopback: over UDP an answer above 512 bytes is TC with no records (the client retries over TCP). */
async function startUpstream(): Promise<{ port: number; close: () => void }> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = net.createServer((socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const answer = upstreamAnswer(parseDnsMessage(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
          const length = Buffer.alloc(2);
          length.writeUInt16BE(answer.length);
          socket.write(Buffer.concat([length, answer]));
        }
      });
    });
    udp.on('message', (bytes, from) => {
      const query = parseDnsMessage(bytes);
      let answer = upstreamAnswer(query);
      if (answer.length > 512) {
        answer = reply(query, 0);
        answer.writeUInt16BE(answer.readUInt16BE(2) | DnsFlag.TC, 2);
      }
      udp.send(answer, from.port, from.address);
    });
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) return { port, close: () => (udp.close(), tcp.close()) };
    udp.close();
  }
}

/** The traffic manager stand-in: google.com is a Service google in namespace com; echo.default is one in default. */
async function clusterStandIn(queryBytes: Buffer): Promise<Buffer> {
  const query = parseDnsMessage(queryBytes);
  const q = query.questions[0]!;
  const name = nameToText(q.name).toLowerCase();
  const ip = { 'google.com': [10, 96, 0, 99], 'echo.default': [10, 96, 0, 10] }[name];
  if (ip === undefined || q.type !== DnsType.A) return reply(query, ip === undefined ? DnsRcode.NXDOMAIN : 0);
  return reply(query, 0, [{ name: q.name, type: DnsType.A, class: 1, ttl: 30, data: Buffer.from(ip) }]);
}

/** The real resolver, counting the queries it was given and those it is resolving at once. */
class CountingResolver extends DnsResolver {
  resolving = 0;
  peakResolving = 0;
  total = 0;

  override async resolve(query: Buffer, transport?: 'udp' | 'tcp'): Promise<Buffer> {
    this.total++;
    this.peakResolving = Math.max(this.peakResolving, ++this.resolving);
    try {
      return await super.resolve(query, transport);
    } finally {
      this.resolving--;
    }
  }
}

/** 10,000 framed queries for mid.example TXT written at once, never reading an answer, for argv[2] ms. */
const PIPELINING_CLIENT = `
const net = require('node:net');
const frames = [];
for (let id = 0; id < 10000; id++) {
  const q = Buffer.from('000001000001000000000000' + '036d6964076578616d706c6500' + '00100001', 'hex');
  q.writeUInt16BE(id, 0);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(q.length);
  frames.push(length, q);
}
const socket = net.connect(53, process.argv[1], () => {
  socket.pause();
  socket.write(Buffer.concat(frames));
  setTimeout(() => {
    socket.destroy();
  }, Number(process.argv[2]));
});
socket.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/** Opens argv[2] DNS-over-TCP connections one after the other, sends nothing, and reports how each ended. */
const IDLE_CLIENTS = `
const net = require('node:net');
const open = () => new Promise((resolve) => {
  const s = net.connect(53, process.argv[1]);
  s.once('connect', () => resolve(s));
  s.once('error', (e) => resolve(e.code));
});
(async () => {
  const sockets = [];
  const refused = [];
  for (let i = 0; i < Number(process.argv[2]); i++) {
    const s = await open();
    if (typeof s === 'string') refused.push(s);
    else sockets.push(s);
  }
  for (const s of sockets) s.on('error', () => {});
  await Promise.all(sockets.map((s) => new Promise((r) => s.once('close', r))));
  console.log(JSON.stringify({ connected: sockets.length, refused }));
})();
`;

/** Sends one datagram (hex on stdin) and prints the reply as hex, or nothing after 3 s. */
const UDP_CLIENT = `
const dgram = require('node:dgram');
let hex = '';
process.stdin.on('data', (c) => (hex += c)).on('end', () => {
  const s = dgram.createSocket('udp4');
  const timer = setTimeout(() => process.exit(2), 3000);
  s.on('message', (m) => { console.log(m.toString('hex')); clearTimeout(timer); s.close(); });
  s.send(Buffer.from(hex, 'hex'), 53, process.argv[1]);
});
`;

function digFlags(output: string): string[] {
  return (/;; flags: ([a-z ]+);/.exec(output)?.[1] ?? '').split(' ');
}

function digSize(output: string): number {
  return Number(/MSG SIZE\s+rcvd: (\d+)/.exec(output)?.[1] ?? NaN);
}

describe('root daemon DNS against hostile local clients, over a real TUN device', { skip: !ROOT && 'needs root' }, () => {
  let ns: TestNetns;
  let tun: TunStack;
  let upstream: { port: number; close: () => void };
  let resolver: CountingResolver;
  let dns: StackDnsServer;
  const logged: string[] = [];
  const tcpSockets: TcpSocket[] = [];

  async function dig(args: string[]): Promise<string> {
    const r = await ns.exec('dig', [`@${DNS_ADDRESS}`, '+time=5', '+tries=1', ...args], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `dig ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    ns = await TestNetns.create('dns');
    upstream = await startUpstream();
    const upstreamResolver = new UpstreamResolver(['127.0.0.1'], 2000, upstream.port);
    resolver = new CountingResolver({
      cluster: () => clusterStandIn,
      upstream: (query) => upstreamResolver.query(query),
      facts: () => ({ clusterDomain: 'cluster.local', subnets: [], namespaces: ['default', 'com'] }),
    });
    dns = new StackDnsServer(resolver, parseIp(DNS_ADDRESS), createLogger('warn', (line) => logged.push(line)));
    // The requests as the stack makes them, keeping each accepted socket for the test to watch.
    const accept = (request: TcpConnectRequest): TcpConnectRequest => ({
      local: request.local,
      remote: request.remote,
      accept: () => {
        const socket = request.accept();
        tcpSockets.push(socket);
        return socket;
      },
      acceptSplice: (stream, observer) => request.acceptSplice(stream, observer),
      refuse: () => request.refuse(),
      unreachable: () => request.unreachable(),
    });
    tun = await TunStack.open(
      { name: 'kt0', netns: ns.name, mtu: 65_000, vnetHeader: true, offload: true, addresses: ['198.18.0.1/32'], routes: [`${DNS_ADDRESS}/32`] },
      {
        tcpConnect: (request) => (dns.serves(request.local) ? dns.serveTcp(accept(request)) : request.refuse()),
        udpFlow: (flow) => (dns.serves(flow.local) ? dns.serveUdp(flow) : flow.refuse()),
      },
    );
  });

  after(async () => {
    tun?.close();
    upstream?.close();
    rmSync(`/etc/netns/${ns?.name}`, { recursive: true, force: true });
    await ns?.destroy();
  });

  test('dig +bufsize=65535 for a ~60 KiB TXT answer gets it truncated (TC) over UDP, then whole over TCP; the server goes on', async () => {
    const udp = await dig(['+bufsize=65535', '+ignore', 'TXT', 'big.example']);
    assert.ok(digFlags(udp).includes('tc'), udp);
    assert.ok(digSize(udp) <= MAX_UDP_ANSWER, udp);
    const tcp = await dig(['+tcp', 'TXT', 'big.example']);
    assert.ok(!digFlags(tcp).includes('tc'), tcp);
    assert.match(tcp, /ANSWER: 1,/);
    assert.ok(digSize(tcp) > BIG_TXT_BYTES, tcp);
    const plain = await dig(['+ignore', '+noedns', 'TXT', 'big.example']);
    assert.ok(digFlags(plain).includes('tc') && digSize(plain) <= 512, plain);
    assert.match(await dig(['+short', 'A', 'google.com']), /^203\.0\.113\.7$/m);
    assert.equal(dns.failures, 0, logged.join(''));
  });

  test('a 64 KiB compression-chain query is answered FORMERR, and the server goes on', async () => {
    const attack = compressionChain(5380);
    assert.ok(attack.length > 64_000);
    const r = await ns.exec('node', ['-e', UDP_CLIENT, DNS_ADDRESS], { input: attack.toString('hex'), timeoutMs: 10_000 });
    assert.equal(r.code, 0, `no answer: ${r.stderr}`);
    const answer = Buffer.from(r.stdout.trim(), 'hex');
    assert.equal(answer.readUInt16BE(0), 0x4242);
    assert.equal(answer.readUInt16BE(2) & 0xf, DnsRcode.FORMERR);
    assert.match(await dig(['+short', 'A', 'google.com']), /^203\.0\.113\.7$/m);
  });

  test('a TCP client pipelining 10,000 queries without reading its answers gets a bounded share of the daemon', async (t) => {
    let peakQueued = 0;
    const before = tcpSockets.length;
    const sample = setInterval(() => {
      for (const socket of tcpSockets.slice(before)) peakQueued = Math.max(peakQueued, socket.writableLength);
    }, 5);
    resolver.peakResolving = 0;
    const given = resolver.total;
    const r = await ns.exec('node', ['-e', PIPELINING_CLIENT, DNS_ADDRESS, '3000'], { timeoutMs: 20_000 });
    clearInterval(sample);
    assert.equal(r.code, 0, r.stderr);
    // The daemon stopped taking queries from a client that does not read its answers.
    assert.ok(resolver.total - given < 10_000, `all ${resolver.total - given} queries were taken`);
    assert.ok(resolver.peakResolving <= MAX_TCP_QUERIES_IN_FLIGHT, `resolving ${resolver.peakResolving} at once`);
    // Beyond the stack's own per-connection send buffer, what the DNS server queues: 64 KiB, plus the answers of
    // the queries in flight when that was reached.
    const frame = 2 + 12 + 13 + 4 + 13 + 10 + MID_TXT_BYTES;
    const bound = MAX_TCP_QUEUED_BYTES + MAX_TCP_QUERIES_IN_FLIGHT * frame;
    t.diagnostic(`queries taken ${resolver.total - given}, resolving at most ${resolver.peakResolving} at once, answers queued at most ${peakQueued} bytes (bound ${bound})`);
    assert.ok(peakQueued > 0 && peakQueued <= bound, `answers queued towards the client: ${peakQueued} bytes, bound ${bound}`);
    assert.match(await dig(['+tcp', '+short', 'A', 'google.com']), /^203\.0\.113\.7$/m);
    assert.equal(dns.failures, 0, logged.join(''));
  });

  test(`DNS over TCP serves ${MAX_TCP_CONNECTIONS} connections at once and closes idle ones (${TCP_IDLE_TIMEOUT_MS} ms)`, async () => {
    const attempts = MAX_TCP_CONNECTIONS + 1;
    const r = await ns.exec('node', ['-e', IDLE_CLIENTS, DNS_ADDRESS, String(attempts)], { timeoutMs: TCP_IDLE_TIMEOUT_MS + 20_000 });
    assert.equal(r.code, 0, `the server did not close every idle connection: ${r.stdout}${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), { connected: MAX_TCP_CONNECTIONS, refused: ['ECONNREFUSED'] });
    assert.match(await dig(['+tcp', '+short', 'A', 'google.com']), /^203\.0\.113\.7$/m);
  });

  test('resolv.conf mode: getent hosts google.com gives the upstream answer though the cluster has a namespace com', async () => {
    mkdirSync(`/etc/netns/${ns.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns.name}/resolv.conf`, `nameserver ${DNS_ADDRESS}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions timeout:2 attempts:1\n`);
    const google = await ns.exec('getent', ['ahostsv4', 'google.com'], { timeoutMs: 15_000 });
    assert.equal(google.code, 0, google.stderr);
    assert.match(google.stdout, /^203\.0\.113\.7\s/m);
    assert.doesNotMatch(google.stdout, /10\.96\.0\.99/);
    const echo = await ns.exec('getent', ['ahostsv4', 'echo.default'], { timeoutMs: 15_000 });
    assert.equal(echo.code, 0, echo.stderr);
    assert.match(echo.stdout, /^10\.96\.0\.10\s/m);
  });
});
