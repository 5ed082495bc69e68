// Client authentication at the traffic manager: every route (RPCs, CONNECT, connect-udp, DNS) answers 401/403
// before anything is served, sessions are bound to the identity that created them, and the Kubernetes mode's
// reviews (against a mock API server in this process: no real one is reachable from the test's network
// namespace; test/e2e/auth-manager-url.test.ts runs them against the sandbox's).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  kubernetesAccessReview,
  kubernetesAuthenticator,
  MAX_REVIEWS_IN_FLIGHT,
  tokenAuthenticator,
  type AccessReview,
  type ClientAuthenticator,
} from '../../src/manager/client-auth.js';
import { isLoopbackHost } from '../../src/net/loopback.js';
import { ListenerTrustError, startTrafficManager, type TrafficManager } from '../../src/manager/traffic-manager.js';
import type { KubeAccess } from '../../src/k8s/resilient-informer.js';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { roundTrip, selfSignedCertificate, startTcpEcho, testManagerConfig } from '../tunnel/tunnel-fixture.js';

const TOKEN = 'the-shared-token-0123456789abcdef';

const base = testManagerConfig({ version: 'auth-test' });

let dir: string;
let tls: { certFile: string; keyFile: string };
let ca: Buffer;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kubetun-auth-'));
  tls = selfSignedCertificate(dir);
  ca = readFileSync(tls.certFile);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function startTlsManager(authenticator: ClientAuthenticator): Promise<TrafficManager> {
  return startTrafficManager({ ...base, host: '127.0.0.1', tls, authenticator });
}

/** One raw HTTP/2 request; resolves with the response headers (the stream is then dropped). */
async function rawRequest(url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<http2.IncomingHttpHeaders> {
  const session = http2.connect(url, { ca });
  try {
    const stream = session.request(headers, { endStream: body === undefined && headers[':method'] !== 'CONNECT' });
    if (body !== undefined) stream.end(body);
    const [response] = (await new Promise((resolve, reject) => {
      stream.once('response', (h) => resolve([h]));
      stream.once('error', reject);
    })) as [http2.IncomingHttpHeaders];
    stream.close();
    return response;
  } finally {
    session.close();
  }
}

const rpcCode = async (call: Promise<unknown>): Promise<Code | 'ok'> =>
  call.then(
    () => 'ok' as const,
    (error: unknown) => (error instanceof ConnectError ? error.code : assert.fail(`not a ConnectError: ${String(error)}`)),
  );

describe('token mode (a manager outside any cluster)', () => {
  let manager: TrafficManager;
  before(async () => (manager = await startTlsManager(tokenAuthenticator(TOKEN))));
  after(() => manager.close());

  test('no token or a wrong one: ArriveAsClient and Version are Unauthenticated (HTTP 401)', async () => {
    for (const bearerToken of [undefined, 'not-the-token-0123456789abcdef', `${TOKEN}x`]) {
      const client = await TunnelClient.connect(manager.url, { tls: { ca }, ...(bearerToken ? { bearerToken } : {}) });
      try {
        assert.equal(await rpcCode(client.manager.arriveAsClient({ name: 'x' })), Code.Unauthenticated);
        assert.equal(await rpcCode(client.manager.version({})), Code.Unauthenticated);
      } finally {
        client.close();
      }
    }
    assert.equal(manager.sessions.size, 0, 'no session was created');
  });

  test('CONNECT, connect-udp and DNS without the token get 401 with a Bearer challenge, even with a live session id', async () => {
    const owner = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: TOKEN });
    const session = (await owner.manager.arriveAsClient({ name: 'owner' })).id;
    owner.close();
    const requests: http2.OutgoingHttpHeaders[] = [
      { ':method': 'CONNECT', ':authority': '127.0.0.1:9' },
      { ':method': 'CONNECT', ':protocol': 'connect-udp', ':scheme': 'https', ':path': '/.well-known/masque/udp/127.0.0.1/9/', ':authority': 'manager' },
      { ':method': 'GET', ':path': `/dns-query?dns=${Buffer.alloc(12).toString('base64url')}` },
      { ':method': 'POST', ':path': '/kubetun.manager.v1.Manager/ArriveAsClient', 'content-type': 'application/grpc' },
    ];
    for (const headers of requests) {
      for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`]) {
        const answer = await rawRequest(manager.url, { ...headers, 'kubetun-session': session, ...(authorization ? { authorization } : {}) });
        assert.equal(answer[':status'], 401, `${headers[':method']} ${headers[':path'] ?? headers[':authority']} with ${authorization ?? 'nothing'}`);
        assert.equal(answer['www-authenticate'], 'Bearer realm="kubetun"');
        assert.equal(answer['kubetun-error'], 'unauthenticated');
      }
    }
  });

  test('the right token: arrive, then a TCP flow through the tunnel', async () => {
    const echo = await startTcpEcho();
    const client = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: TOKEN });
    try {
      client.sessionId = (await client.manager.arriveAsClient({ name: 'ok' })).id;
      const answer = await roundTrip(await client.openTcp('127.0.0.1', echo.port), Buffer.from('authenticated'));
      assert.equal(answer.toString(), 'authenticated');
    } finally {
      client.close();
      await echo.close();
    }
  });
});

test('a TLS listener without an authenticator, or h2c on an address that is not loopback, refuses to start', async () => {
  await assert.rejects(startTrafficManager({ ...base, host: '127.0.0.1', tls }), ListenerTrustError);
  await assert.rejects(startTrafficManager({ ...base, host: '0.0.0.0' }), /Refusing to serve h2c without client authentication on 0\.0\.0\.0/);
  await assert.rejects(startTrafficManager({ ...base, host: '::' }), ListenerTrustError);
  await assert.rejects(
    startTrafficManager({ ...base, host: '127.0.0.1', tlsListen: { host: '127.0.0.1', port: 0 }, tls }),
    /TLS listener 127\.0\.0\.1:0 needs client authentication/,
  );
});

test('loopback addresses: 127.0.0.0/8, ::1 and mapped 127/8; names and everything else are not', () => {
  for (const host of ['127.0.0.1', '127.9.8.7', '::1', '[::1]', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '198.18.0.1', 'localhost', '128.0.0.1', '::2', '::ffff:10.0.0.1', '']) assert.ok(!isLoopbackHost(host), host);
});

/** Bearer tokens of users a fake API would know: who they are and whether they may port-forward. */
const USERS: Record<string, { username: string; allowed: boolean }> = {
  'alice-token-0123456789': { username: 'alice', allowed: true },
  'bob-token-0123456789ab': { username: 'bob', allowed: true },
  'eve-token-0123456789ab': { username: 'eve', allowed: false },
};

/** A review that answers from USERS and counts its calls (a stand-in for the API server; see the mock below). */
function countingReview(): { review: AccessReview; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    review: async (token) => {
      calls.push(token);
      const user = USERS[token];
      if (user === undefined) return { ok: false, status: 401, message: 'unknown token' };
      return user.allowed ? { ok: true, identity: `user:${user.username}` } : { ok: false, status: 403, message: `${user.username} may not` };
    },
  };
}

describe('Kubernetes mode: the verdict of the reviews, per identity', () => {
  let manager: TrafficManager;
  let calls: string[];
  before(async () => {
    const counting = countingReview();
    calls = counting.calls;
    manager = await startTlsManager(kubernetesAuthenticator(counting.review));
  });
  after(() => manager.close());

  test('a user the API does not know gets 401, one without pods/portforward 403, on RPCs and CONNECT alike', async () => {
    const unknown = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'mallory-token-0123456789' });
    const denied = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'eve-token-0123456789ab' });
    try {
      assert.equal(await rpcCode(unknown.manager.arriveAsClient({ name: 'm' })), Code.Unauthenticated);
      assert.equal(await rpcCode(denied.manager.arriveAsClient({ name: 'e' })), Code.PermissionDenied);
      denied.sessionId = 'whatever';
      await assert.rejects(denied.openTcp('127.0.0.1', 9), (e: unknown) => e instanceof TunnelError && e.code === 'FORBIDDEN' && /eve may not/.test(e.message));
      const answer = await rawRequest(manager.url, { ':method': 'CONNECT', ':authority': '127.0.0.1:9', authorization: 'Bearer eve-token-0123456789ab' });
      assert.equal(answer[':status'], 403);
    } finally {
      unknown.close();
      denied.close();
    }
  });

  test("a session is bound to its creator's identity: another allowed user cannot use its id on any route", async () => {
    const alice = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'alice-token-0123456789' });
    const bob = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'bob-token-0123456789ab' });
    const echo = await startTcpEcho();
    try {
      const session = (await alice.manager.arriveAsClient({ name: 'alice' })).id;
      alice.sessionId = session;
      bob.sessionId = session;
      assert.equal(await rpcCode(bob.manager.remain({ id: session })), Code.NotFound);
      const watch = bob.manager.watchClusterInfo({ id: session })[Symbol.asyncIterator]();
      assert.equal(await rpcCode(watch.next()), Code.NotFound);
      await assert.rejects(bob.openTcp('127.0.0.1', echo.port), (e: unknown) => e instanceof TunnelError && e.code === 'SESSION');
      await assert.rejects(bob.openUdp('127.0.0.1', echo.port), (e: unknown) => e instanceof TunnelError && e.code === 'SESSION');
      await assert.rejects(bob.dnsQuery(Buffer.alloc(12)), (e: unknown) => e instanceof TunnelError && e.code === 'SESSION');
      assert.equal(await rpcCode(bob.manager.depart({ id: session })), 'ok', 'depart answers alike for a session that is not yours');
      assert.equal(await rpcCode(alice.manager.remain({ id: session })), 'ok', "bob's depart did not end alice's session");
      (await alice.openTcp('127.0.0.1', echo.port)).destroy();
    } finally {
      alice.close();
      bob.close();
      await echo.close();
    }
  });

  test('a positive review is remembered per connection; a new token on it is reviewed again', async () => {
    calls.length = 0;
    const client = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'alice-token-0123456789' });
    try {
      await client.manager.version({});
      await client.manager.version({});
      await client.manager.version({});
      assert.deepEqual(calls, ['alice-token-0123456789']);
      client.bearerToken = 'eve-token-0123456789ab';
      assert.equal(await rpcCode(client.manager.version({})), Code.PermissionDenied);
      assert.equal(await rpcCode(client.manager.version({})), Code.PermissionDenied);
      assert.deepEqual(calls, ['alice-token-0123456789', 'eve-token-0123456789ab', 'eve-token-0123456789ab'], 'refusals are not remembered');
    } finally {
      client.close();
    }
    const other = await TunnelClient.connect(manager.url, { tls: { ca }, bearerToken: 'alice-token-0123456789' });
    try {
      await other.manager.version({});
      assert.equal(calls.length, 4, 'another connection is reviewed on its own');
    } finally {
      other.close();
    }
  });
});

test('Kubernetes mode: a remembered review expires after its TTL (fake clock)', async () => {
  let now = 0;
  const { review, calls } = countingReview();
  const authenticator = kubernetesAuthenticator(review, 10_000, () => now);
  const connection = {};
  const bearer = 'Bearer alice-token-0123456789';
  assert.deepEqual(await authenticator.authenticate(connection, bearer), { ok: true, identity: 'user:alice' });
  now = 9_999;
  await authenticator.authenticate(connection, bearer);
  assert.equal(calls.length, 1);
  now = 10_000;
  await authenticator.authenticate(connection, bearer);
  assert.equal(calls.length, 2);
  assert.equal((await authenticator.authenticate(connection, undefined)).ok, false);
  assert.equal((await authenticator.authenticate(connection, `Bearer ${'x'.repeat(20_000)}`)).ok, false, 'an oversized token is refused unreviewed');
  assert.equal(calls.length, 2);
});

test('Kubernetes mode: at most MAX_REVIEWS_IN_FLIGHT reviews wait at once; more are refused with 503 until one ends', async () => {
  const waiting: (() => void)[] = [];
  const review: AccessReview = () => new Promise((resolve) => waiting.push(() => resolve({ ok: false, status: 401, message: 'bad' })));
  const authenticator = kubernetesAuthenticator(review);
  const pending = Array.from({ length: MAX_REVIEWS_IN_FLIGHT }, (_, i) => authenticator.authenticate({}, `Bearer flood-token-${i}-0123456789`));
  const refused = await authenticator.authenticate({}, 'Bearer one-more-token-0123456789');
  assert.equal(!refused.ok && refused.status, 503);
  assert.equal(waiting.length, MAX_REVIEWS_IN_FLIGHT, 'the refused one was not sent to the API');
  waiting.shift()!();
  await pending[0];
  const next = authenticator.authenticate({}, 'Bearer after-one-ended-0123456789');
  assert.equal(waiting.length, MAX_REVIEWS_IN_FLIGHT, 'a review ended, so the next one is sent');
  for (const release of waiting.splice(0)) release();
  await Promise.all([...pending, next]);
});

/**
 * A mock Kubernetes API server (http, in this process): TokenReview and SubjectAccessReview answered from USERS;
 * it records the bodies so that the request the manager makes is checked too.
 */
async function mockApiServer(): Promise<{ access: KubeAccess; bodies: Record<string, unknown>[]; close(): Promise<void> }> {
  const bodies: Record<string, unknown>[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { spec: { token?: string; user?: string } };
      bodies.push({ path: req.url, authorization: req.headers.authorization, ...body });
      if (req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
        const user = USERS[body.spec.token ?? ''];
        const status = user ? { authenticated: true, user: { username: user.username, uid: `uid-${user.username}`, groups: ['system:authenticated'] } } : { authenticated: false, error: 'invalid token' };
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'TokenReview', status }));
        return;
      }
      if (req.url === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
        const user = Object.values(USERS).find((u) => u.username === body.spec.user);
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'SubjectAccessReview', status: { allowed: user?.allowed === true } }));
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const server_ = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const access: KubeAccess = {
    getCurrentCluster: () => ({ name: 'mock', server: server_, skipTLSVerify: false }),
    applyToHTTPSOptions: async (opts) => {
      opts.headers = { ...opts.headers, Authorization: 'Bearer the-managers-own-token' };
    },
  };
  return { access, bodies, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('Kubernetes reviews against a mock API server: TokenReview, then SubjectAccessReview for pods/portforward on the manager pod', async () => {
  const api = await mockApiServer();
  try {
    const review = kubernetesAccessReview(api.access, { namespace: 'kubetun', name: 'traffic-manager-abc' });
    assert.deepEqual(await review('alice-token-0123456789'), { ok: true, identity: 'user:alice' });
    assert.deepEqual(api.bodies[0], {
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      authorization: 'Bearer the-managers-own-token',
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: 'alice-token-0123456789' },
    });
    assert.deepEqual((api.bodies[1] as { spec: unknown }).spec, {
      user: 'alice',
      uid: 'uid-alice',
      groups: ['system:authenticated'],
      resourceAttributes: { namespace: 'kubetun', verb: 'create', resource: 'pods', subresource: 'portforward', name: 'traffic-manager-abc' },
    });
    const eve = await review('eve-token-0123456789ab');
    assert.equal(eve.ok, false);
    assert.equal(!eve.ok && eve.status, 403);
    assert.match(!eve.ok ? eve.message : '', /User "eve" may not use this traffic manager: it needs create on pods\/portforward in namespace kubetun/);
    const nobody = await review('nobody-token-012345678');
    assert.equal(!nobody.ok && nobody.status, 401);
    assert.equal(api.bodies.length, 5, 'no SubjectAccessReview for a token the API does not know');
  } finally {
    await api.close();
  }
  const down = await kubernetesAuthenticator(kubernetesAccessReview(api.access, { namespace: 'kubetun', name: 'p' })).authenticate({}, 'Bearer alice-token-0123456789');
  assert.equal(!down.ok && down.status, 503, 'an unreachable API server is 503, not a grant');
});
