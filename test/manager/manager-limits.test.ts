// The traffic manager's caps and request limits, on a real in-process manager over real HTTP/2 (loopback).

import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { DnsFlag, DnsRcode, DnsType, buildDnsMessage, parseDnsMessage, rcodeOf, textToName } from '../../src/dns/dns-message.js';
import { SessionSchema } from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { createLogger } from '../../src/log/logger.js';
import { admit, Allowance } from '../../src/manager/manager-limits.js';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { DNS_MESSAGE_TYPE, DNS_QUERY_PATH, ERROR_MESSAGE_HEADER, SESSION_HEADER } from '../../src/tunnel/protocol.js';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { closedPort, startTcpEcho, startTunnel, startUdpEcho, type TunnelFixture } from '../tunnel/tunnel-fixture.js';

/** Waits until `condition` holds (the manager frees a place when it sees the stream close). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(10);
}

function isLimit(what: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof TunnelError, String(error));
    assert.equal(error.code, 'LIMIT');
    assert.match(error.message, what);
    return true;
  };
}

function isConnectError(code: Code, what: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, what);
    return true;
  };
}

function liveSession(tunnel: TunnelFixture) {
  return tunnel.manager.sessions.get(tunnel.client.sessionId!)!;
}

test('admit takes from every allowance or from none, and gives back once', () => {
  const session = new Allowance('things per session', 2);
  const all = new Allowance('things in all', 1);
  const first = admit(session, all);
  assert.equal(first.admitted, true);
  const second = admit(session, all);
  assert.deepEqual(second, { admitted: false, message: "The traffic manager's limit of 1 things in all is reached; close some and try again." });
  assert.equal(session.inUse, 1, 'nothing taken from the session when the global allowance is full');
  if (first.admitted) {
    first.release();
    first.release();
  }
  assert.equal(session.inUse, 0);
  assert.equal(all.inUse, 0);
});

test('TCP flows beyond the per-session cap get LIMIT naming the cap; closing one frees its place', async () => {
  const tunnel = await startTunnel({ limits: { tcpFlowsPerSession: 3 } });
  const echo = await startTcpEcho();
  try {
    const held = await Promise.all([1, 2, 3].map(() => tunnel.client.openTcp('127.0.0.1', echo.port)));
    await assert.rejects(tunnel.client.openTcp('127.0.0.1', echo.port), isLimit(/limit of 3 TCP flows per session/));
    held[0]!.destroy();
    await until(() => liveSession(tunnel).allowances.tcpFlows.inUse === 2);
    held.push(await tunnel.client.openTcp('127.0.0.1', echo.port));
    // Refused and failed dials give their place back too.
    held.pop()!.destroy();
    await assert.rejects(tunnel.client.openTcp('127.0.0.1', await closedPort()), { code: 'REFUSED' });
    await until(() => liveSession(tunnel).allowances.tcpFlows.inUse === 2);
    for (const stream of held) stream.destroy();
  } finally {
    await tunnel.close();
    await echo.close();
  }
});

test('the global TCP cap holds across sessions', async () => {
  const tunnel = await startTunnel({ limits: { tcpFlows: 2 } });
  const echo = await startTcpEcho();
  const other = await TunnelClient.connect(tunnel.manager.url);
  try {
    other.sessionId = (await other.manager.arriveAsClient({ name: 'other', namespace: 'default' })).id;
    const held = await Promise.all([1, 2].map(() => tunnel.client.openTcp('127.0.0.1', echo.port)));
    await assert.rejects(other.openTcp('127.0.0.1', echo.port), isLimit(/limit of 2 TCP flows in all/));
    for (const stream of held) stream.destroy();
  } finally {
    other.close();
    await tunnel.close();
    await echo.close();
  }
});

test('UDP flows beyond the per-session cap get LIMIT', async () => {
  const tunnel = await startTunnel({ limits: { udpFlowsPerSession: 1 } });
  const echo = await startUdpEcho();
  try {
    const held = await tunnel.client.openUdp('127.0.0.1', echo.port);
    await assert.rejects(tunnel.client.openUdp('127.0.0.1', echo.port), isLimit(/limit of 1 UDP flows per session/));
    held.close();
    await until(() => liveSession(tunnel).allowances.udpFlows.inUse === 0);
    (await tunnel.client.openUdp('127.0.0.1', echo.port)).close();
  } finally {
    await tunnel.close();
    echo.close();
  }
});

test('DNS queries in flight beyond the per-session cap get SERVFAIL at once on the DNS stream, LIMIT over HTTP (a cluster DNS server that never answers)', async () => {
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const tunnel = await startTunnel({
    limits: { dnsQueriesPerSession: 2 },
    cluster: { podCidrs: [], serviceCidrs: [], dns: { ip: '127.0.0.1', port: silent.address().port }, clusterDomain: 'cluster.local' },
  });
  const query = buildDnsMessage({
    id: 7,
    flags: DnsFlag.RD,
    questions: [{ name: textToName('echo.default.svc.cluster.local'), type: DnsType.A, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  });
  try {
    const pending = [tunnel.client.dnsQuery(query), tunnel.client.dnsQuery(query)];
    for (const p of pending) p.catch(() => undefined);
    await until(() => liveSession(tunnel).allowances.dnsQueries.inUse === 2);
    const started = performance.now();
    const refused = parseDnsMessage(await tunnel.client.dnsQuery(query));
    assert.ok(performance.now() - started < 1000, 'answered at once, not after the cluster DNS timed out');
    assert.equal(refused.id, 7);
    assert.equal(rcodeOf(refused.flags), DnsRcode.SERVFAIL);
    // A stream per query (RFC 8484), as to a manager without the DNS stream.
    const alone = http2.connect(tunnel.manager.url);
    try {
      const stream = alone.request({ ':method': 'POST', ':path': DNS_QUERY_PATH, [SESSION_HEADER]: tunnel.client.sessionId! });
      stream.end(query);
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(headers[':status'], 429);
      assert.match(String(headers[ERROR_MESSAGE_HEADER]), /limit of 2 DNS queries in flight per session/);
      stream.resume();
    } finally {
      alone.close();
    }
  } finally {
    await tunnel.close();
    silent.close();
  }
});

test('ArriveAsClient checks its fields: the namespace is a DNS label, the rest short printable text', async () => {
  const tunnel = await startTunnel();
  try {
    const arrive = tunnel.client.manager.arriveAsClient.bind(tunnel.client.manager);
    const invalid = (field: RegExp) => isConnectError(Code.InvalidArgument, field);
    await assert.rejects(arrive({ name: 'n', namespace: 'shop\nsearch evil.example' }), invalid(/namespace/));
    await assert.rejects(arrive({ name: 'n', namespace: 'Shop' }), invalid(/namespace/));
    await assert.rejects(arrive({ name: 'n', namespace: 'a'.repeat(64) }), invalid(/namespace/));
    await assert.rejects(arrive({ name: 'n', namespace: 'bad.' }), invalid(/namespace/));
    await assert.rejects(arrive({ name: 'me\u001b[2J', namespace: 'default' }), invalid(/name/));
    await assert.rejects(arrive({ name: 'n', hostname: 'h'.repeat(254) }), invalid(/hostname/));
    await assert.rejects(arrive({ name: 'n', version: 'v'.repeat(65) }), invalid(/version/));
    assert.ok((await arrive({ name: 'me@laptop', namespace: 'a'.repeat(63), hostname: 'laptop', version: '1.2.3' })).id);
    assert.ok((await arrive({ name: 'me@laptop', namespace: '' })).id, 'no namespace means default');
  } finally {
    await tunnel.close();
  }
});

test('sessions per connection and in all are capped with ResourceExhausted', async () => {
  const tunnel = await startTunnel({ limits: { sessionsPerConnection: 2, sessions: 3 } });
  const other = await TunnelClient.connect(tunnel.manager.url);
  try {
    // The fixture's own session is the first on its connection.
    await tunnel.client.manager.arriveAsClient({ name: 'second' });
    await assert.rejects(
      tunnel.client.manager.arriveAsClient({ name: 'third' }),
      isConnectError(Code.ResourceExhausted, /limit of 2 sessions/),
    );
    await other.manager.arriveAsClient({ name: 'other' });
    await assert.rejects(other.manager.arriveAsClient({ name: 'more' }), isConnectError(Code.ResourceExhausted, /limit of 3 sessions/));
  } finally {
    other.close();
    await tunnel.close();
  }
});

test('cluster info watches per session are capped', async () => {
  const tunnel = await startTunnel({ limits: { watchesPerSession: 1 } });
  const abort = new AbortController();
  try {
    const id = tunnel.client.sessionId!;
    const first = tunnel.client.manager.watchClusterInfo({ id }, { signal: abort.signal })[Symbol.asyncIterator]();
    await first.next();
    const second = tunnel.client.manager.watchClusterInfo({ id })[Symbol.asyncIterator]();
    await assert.rejects(second.next(), isConnectError(Code.ResourceExhausted, /limit of 1 cluster info watches per session/));
  } finally {
    abort.abort();
    await tunnel.close();
  }
});

test('an RPC message over 64 KiB is refused with ResourceExhausted, not read', async () => {
  const tunnel = await startTunnel();
  try {
    await assert.rejects(
      tunnel.client.manager.arriveAsClient({ name: 'n'.repeat(70_000) }),
      isConnectError(Code.ResourceExhausted, /readMaxBytes/),
    );
  } finally {
    await tunnel.close();
  }
});

/** One gRPC call on a raw HTTP/2 connection; resolves with the response and trailer headers together. */
async function rawGrpc(url: string, method: string, headers: http2.OutgoingHttpHeaders, frame: Buffer) {
  const session = http2.connect(url);
  try {
    const stream = session.request({
      ':method': 'POST',
      ':path': `/kubetun.manager.v1.Manager/${method}`,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      ...headers,
    });
    const all: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => Object.assign(all, h));
    stream.on('trailers', (h) => Object.assign(all, h));
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.end(frame);
    await once(stream, 'close');
    return { headers: all, body: Buffer.concat(chunks) };
  } finally {
    session.close();
  }
}

function envelope(flags: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

test('a gzip-compressed RPC is refused before it is inflated (Unimplemented: no compression)', async () => {
  const tunnel = await startTunnel();
  try {
    // ~10 KB on the wire that would inflate to 10 MB.
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
    const { headers } = await rawGrpc(tunnel.manager.url, 'Version', { 'grpc-encoding': 'gzip' }, envelope(1, bomb));
    assert.equal(headers['grpc-status'], String(Code.Unimplemented), String(headers['grpc-message']));
    assert.match(String(headers['grpc-message']), /compression/);
  } finally {
    await tunnel.close();
  }
});

test('responses are never compressed, even when the client accepts gzip', async () => {
  // Enough CIDRs for the cluster info to pass the 1 KiB under which nothing is compressed anyway.
  const podCidrs = Array.from({ length: 200 }, (_, i) => parsePrefix(`10.${i}.0.0/16`));
  const tunnel = await startTunnel({ cluster: { podCidrs, serviceCidrs: [], dns: undefined, clusterDomain: 'cluster.local' } });
  try {
    const request = Buffer.from(toBinary(SessionSchema, create(SessionSchema, { id: tunnel.client.sessionId! })));
    const session = http2.connect(tunnel.manager.url);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/kubetun.manager.v1.Manager/WatchClusterInfo',
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      'grpc-accept-encoding': 'gzip, br',
    });
    stream.end(envelope(0, request));
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    const [first] = (await once(stream, 'data')) as [Buffer];
    session.destroy();
    assert.equal(headers['grpc-encoding'] ?? 'identity', 'identity');
    assert.equal(first[0], 0, 'the message is not flagged compressed');
    assert.ok(first.readUInt32BE(1) > 1024, 'the message is big enough that it would have been compressed');
  } finally {
    await tunnel.close();
  }
});

/** A DNS POST on a raw HTTP/2 stream; the caller writes the body. */
function dnsPost(session: http2.ClientHttp2Session, sessionId: string, headers: http2.OutgoingHttpHeaders = {}) {
  return session.request({
    ':method': 'POST',
    ':path': DNS_QUERY_PATH,
    'content-type': DNS_MESSAGE_TYPE,
    [SESSION_HEADER]: sessionId,
    ...headers,
  });
}

test('a DNS body longer than a DNS message is answered 413 at once, without waiting for its end', { timeout: 20_000 }, async () => {
  const tunnel = await startTunnel();
  const session = http2.connect(tunnel.manager.url);
  try {
    const announced = dnsPost(session, tunnel.client.sessionId!, { 'content-length': '1000000' });
    const [first] = (await once(announced, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(first[':status'], 413);
    announced.destroy();

    const streaming = dnsPost(session, tunnel.client.sessionId!);
    // More than 65,535 bytes, and the request is never ended.
    streaming.write(Buffer.alloc(70_000));
    const [second] = (await once(streaming, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(second[':status'], 413);
    await once(streaming, 'close');
  } finally {
    session.destroy();
    await tunnel.close();
  }
});

test('the HTTP/2 server bounds streams per connection and header lists', async () => {
  const tunnel = await startTunnel();
  const session = http2.connect(tunnel.manager.url);
  try {
    const [settings] = (await once(session, 'remoteSettings')) as [http2.Settings];
    assert.equal(settings.maxConcurrentStreams, 3_000);
    assert.equal(settings.maxHeaderListSize, 16 * 1024);
  } finally {
    session.destroy();
    await tunnel.close();
  }
});

test('client connections beyond the cap are dropped; a closed one frees its place', async () => {
  const tunnel = await startTunnel({ limits: { connections: 2 } });
  try {
    const second = await TunnelClient.connect(tunnel.manager.url, { connectTimeoutMs: 5_000 });
    await assert.rejects(TunnelClient.connect(tunnel.manager.url, { connectTimeoutMs: 5_000 }), { code: 'CONNECTION' });
    second.close();
    await until(() => tunnel.manager.connectionCount === 1);
    (await TunnelClient.connect(tunnel.manager.url, { connectTimeoutMs: 5_000 })).close();
  } finally {
    await tunnel.close();
  }
});

test('loopback is refused even when --allow lists it, for TCP and UDP', async () => {
  const tunnel = await startTunnel({ loopbackTargetsForTests: false });
  const echo = await startTcpEcho();
  const udp = await startUdpEcho();
  const forbidden = (error: unknown): boolean => {
    assert.ok(error instanceof TunnelError);
    assert.equal(error.code, 'FORBIDDEN');
    assert.match(error.message, /loopback .*whatever --allow says/);
    return true;
  };
  try {
    await assert.rejects(tunnel.client.openTcp('127.0.0.1', echo.port), forbidden);
    await assert.rejects(tunnel.client.openTcp('::ffff:127.0.0.1', echo.port), forbidden);
    await assert.rejects(tunnel.client.openUdp('127.0.0.1', udp.port), forbidden);
  } finally {
    await tunnel.close();
    await echo.close();
    udp.close();
  }
});

test("session ids never appear in the manager's log, at any level", async () => {
  const lines: string[] = [];
  const tunnel = await startTunnel({ log: createLogger('debug', (line) => lines.push(line)), sessionTtlMs: 300 });
  try {
    const { client } = tunnel;
    const ids = [client.sessionId!];
    await client.openTcp('127.0.0.1', await closedPort()).catch(() => undefined);
    const udp = await client.openUdp('127.0.0.1', 9);
    udp.close();
    const departing = (await client.manager.arriveAsClient({ name: 'departing' })).id;
    ids.push(departing);
    await client.manager.depart({ id: departing });
    // The fixture's session is left to expire.
    await until(() => tunnel.manager.sessions.size === 0);
    assert.ok(lines.some((line) => line.includes('client arrived')));
    assert.ok(lines.some((line) => line.includes('session expired')));
    for (const id of ids) for (const line of lines) assert.ok(!line.includes(id), `a log line carries a session id: ${line}`);
  } finally {
    await tunnel.close();
  }
});
