// The DNS stream (protocol.ts): many queries on one stream between TunnelClient and a real traffic manager, whose
// cluster DNS is a small UDP server here that answers every A query, late for names starting with "slow"; and
// the client end against stand-in managers for what a real one does not do (refuse it, never answer, answer for
// IDs nobody asked).

import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { DnsFlag, DnsRcode, DnsType, buildDnsMessage, nameToText, parseDnsMessage, rcodeOf, textToName } from '../../src/dns/dns-message.js';
import { DnsFrameReader, frameDnsMessage } from '../../src/dns/dns-framing.js';
import { DnsStream } from '../../src/tunnel/dns-stream.js';
import { DNS_QUERY_PATH, DNS_STREAM_PATH, DNS_STREAM_TYPE, SESSION_HEADER } from '../../src/tunnel/protocol.js';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { startTunnel, type TunnelFixture } from './tunnel-fixture.js';

const SLOW_MS = 300;
let clusterDns: dgram.Socket;
let tunnel: TunnelFixture;

function query(name: string, id: number): Buffer {
  return buildDnsMessage({ id, flags: DnsFlag.RD, questions: [{ name: textToName(name), type: DnsType.A, class: 1 }], answers: [], authorities: [], additionals: [] });
}

before(async () => {
  clusterDns = dgram.createSocket('udp4');
  clusterDns.on('message', (bytes, from) => {
    const asked = parseDnsMessage(bytes);
    const question = asked.questions[0]!;
    const answer = buildDnsMessage({
      id: asked.id,
      flags: DnsFlag.QR | DnsFlag.AA | DnsFlag.RD | DnsFlag.RA,
      questions: [question],
      answers: [{ name: question.name, type: DnsType.A, class: 1, ttl: 5, data: Buffer.from([10, 96, 0, question.name[0]!.length]) }],
      authorities: [],
      additionals: [],
    });
    setTimeout(() => clusterDns.send(answer, from.port, from.address), question.name[0]!.startsWith('slow') ? SLOW_MS : 0);
  });
  clusterDns.bind(0, '127.0.0.1');
  await once(clusterDns, 'listening');
  tunnel = await startTunnel({ cluster: { podCidrs: [], serviceCidrs: [], dns: { ip: '127.0.0.1', port: (clusterDns.address() as AddressInfo).port }, clusterDomain: 'cluster.local' } });
});

after(async () => {
  await tunnel.close();
  clusterDns.close();
});

test('concurrent queries share one stream, each answered as soon as it is ready with its own ID, even when IDs collide', async () => {
  const slow = tunnel.client.dnsQuery(query('slow-one', 7));
  const fast = tunnel.client.dnsQuery(query('fast', 7));
  const more = Array.from({ length: 20 }, (_, i) => tunnel.client.dnsQuery(query(`slow-${i}`, 1000 + i)));
  // One stream carries them all (the DNS stream), where a stream per query would be 22.
  assert.equal(tunnel.client.openStreams, 1);
  const first = await Promise.race([slow.then(() => 'slow'), fast.then(() => 'fast')]);
  assert.equal(first, 'fast');
  for (const [promise, name, id] of [[slow, 'slow-one', 7], [fast, 'fast', 7]] as const) {
    const answer = parseDnsMessage(await promise);
    assert.equal(answer.id, id);
    assert.equal(rcodeOf(answer.flags), DnsRcode.NOERROR);
    assert.equal(nameToText(answer.questions[0]!.name), name);
    assert.deepEqual([...answer.answers[0]!.data], [10, 96, 0, name.length]);
  }
  const answers = (await Promise.all(more)).map((bytes) => parseDnsMessage(bytes));
  assert.deepEqual(answers.map((a) => a.id), Array.from({ length: 20 }, (_, i) => 1000 + i));
  assert.deepEqual(answers.map((a) => nameToText(a.questions[0]!.name)), Array.from({ length: 20 }, (_, i) => `slow-${i}`));
});

test('a new session gets a new stream: the manager serves a stream only for the session it was opened with', async () => {
  const id = tunnel.client.sessionId;
  tunnel.client.sessionId = 'not-a-session';
  try {
    await assert.rejects(tunnel.client.dnsQuery(query('fast', 1)), (error: unknown) => error instanceof TunnelError && error.code === 'SESSION');
  } finally {
    tunnel.client.sessionId = id;
  }
  assert.equal(rcodeOf(parseDnsMessage(await tunnel.client.dnsQuery(query('fast', 2))).flags), DnsRcode.NOERROR);
});

/** A raw stream to the manager's DNS stream with this test's session. */
async function rawDnsStream(t: TestContext): Promise<http2.ClientHttp2Stream> {
  const session = http2.connect(tunnel.manager.url);
  t.after(() => session.destroy());
  const stream = session.request({ ':method': 'POST', ':path': DNS_STREAM_PATH, 'content-type': DNS_STREAM_TYPE, [SESSION_HEADER]: tunnel.client.sessionId! });
  stream.on('error', () => undefined);
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  assert.equal(headers[':status'], 200);
  assert.equal(headers['content-type'], DNS_STREAM_TYPE);
  return stream;
}

test('the manager answers queries cut anywhere across DATA frames, and ends the stream after the last answer once the client ended', async (t) => {
  const stream = await rawDnsStream(t);
  const bytes = Buffer.concat([frameDnsMessage(query('fast', 11)), frameDnsMessage(query('slow-x', 12)), frameDnsMessage(Buffer.from('not a dns message'))]);
  for (let at = 0; at < bytes.length; at += 5) stream.write(bytes.subarray(at, at + 5));
  stream.end();
  const reader = new DnsFrameReader();
  for await (const chunk of stream) reader.push(chunk as Buffer);
  const answers: Buffer[] = [];
  for (let m = reader.next(); m !== null; m = reader.next()) answers.push(m);
  // The unreadable one is answered at once (its first two bytes are its ID), fast after a round trip, slow last.
  assert.deepEqual(answers.map((a) => a.readUInt16BE(0)), [0x6e6f, 11, 12]);
  assert.equal(rcodeOf(parseDnsMessage(answers[0]!).flags), DnsRcode.FORMERR);
  assert.equal(rcodeOf(parseDnsMessage(answers[2]!).flags), DnsRcode.NOERROR);
});

test('a frame too short to carry a message ID resets the stream (PROTOCOL_ERROR)', async (t) => {
  const stream = await rawDnsStream(t);
  stream.write(frameDnsMessage(Buffer.alloc(5)));
  await new Promise((resolve) => stream.once('close', resolve));
  assert.equal(stream.rstCode, http2.constants.NGHTTP2_PROTOCOL_ERROR);
});

test('the DNS stream is closed when its session ends', async (t) => {
  const stream = await rawDnsStream(t);
  stream.resume();
  const fixture = await startTunnel();
  t.after(() => fixture.close());
  // A session of its own, ended by departing.
  const session = http2.connect(fixture.manager.url);
  t.after(() => session.destroy());
  const own = session.request({ ':method': 'POST', ':path': DNS_STREAM_PATH, 'content-type': DNS_STREAM_TYPE, [SESSION_HEADER]: fixture.client.sessionId! });
  own.on('error', () => undefined);
  own.resume();
  await once(own, 'response');
  const closed = new Promise((resolve) => own.once('close', resolve));
  await fixture.client.manager.depart({ id: fixture.client.sessionId! });
  await closed;
  assert.equal(own.rstCode, http2.constants.NGHTTP2_CANCEL);
  assert.equal(stream.closed, false, 'another session\'s stream stays');
});

/** A stand-in manager: `dnsStream` serves the DNS stream's requests, DNS over HTTP answers `answer` to every query. */
async function standIn(t: TestContext, dnsStream: (stream: http2.ServerHttp2Stream) => void, answer = Buffer.alloc(12)): Promise<string> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.resume();
    if (headers[':path'] === DNS_STREAM_PATH) dnsStream(stream);
    else if (headers[':path'] === DNS_QUERY_PATH) {
      stream.respond({ ':status': 200, 'content-type': 'application/dns-message', 'content-length': answer.length });
      stream.end(answer);
    }
    else stream.respond({ ':status': 404 }, { endStream: true });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a manager that refuses the DNS stream (REFUSED_STREAM) gets each query on a stream of its own (stand-in manager)', async (t) => {
  const answer = Buffer.from(query('x', 0x4242));
  const url = await standIn(t, (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM), answer);
  const client = await TunnelClient.connect(url, { heartbeat: false });
  t.after(() => client.close());
  assert.deepEqual(await client.dnsQuery(query('x', 0x4242)), answer);
  assert.deepEqual(await client.dnsQuery(query('x', 0x4242)), answer);
});

test('the client end holds nothing for a manager that never answers, and takes only answers to what it asked (stand-in manager)', async (t) => {
  const asked: Buffer[] = [];
  const url = await standIn(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': DNS_STREAM_TYPE });
    const reader = new DnsFrameReader();
    stream.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let m = reader.next(); m !== null; m = reader.next()) {
        asked.push(m);
        // An answer for an ID nobody asked, one too short for an ID, then (for "answered") the real one.
        const other = Buffer.from(m);
        other.writeUInt16BE((m.readUInt16BE(0) + 0x8000) & 0xffff, 0);
        stream.write(Buffer.concat([frameDnsMessage(other), frameDnsMessage(Buffer.alloc(3))]));
        if (parseDnsMessage(m).questions[0]!.name[0] === 'answered') stream.write(frameDnsMessage(m));
      }
    });
  });
  const session = http2.connect(url);
  t.after(() => session.destroy());
  const dns = new DnsStream(session.request({ ':method': 'POST', ':path': DNS_STREAM_PATH }), { sessionId: undefined, bearerToken: undefined }, 200);
  const silent = dns.query(query('silent', 5));
  const answered = parseDnsMessage(await dns.query(query('answered', 5)));
  assert.equal(answered.id, 5);
  assert.equal(nameToText(answered.questions[0]!.name), 'answered');
  await assert.rejects(silent, (error: unknown) => error instanceof TunnelError && error.code === 'TIMEOUT');
  assert.notEqual(asked[0]!.readUInt16BE(0), asked[1]!.readUInt16BE(0), 'two queries with one ID go out under two');
});
