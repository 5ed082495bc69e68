import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { InterceptDialError } from '../../../src/agent/http/http-routing.js';
import { exchangeRaw, headerRoute, listen, readUntil, startAgent, type Listening } from './routing-fixture.js';

/** A server that answers `who: path` and remembers what it was asked, body length included. */
function namedServer(who: string, seen: string[]): http.Server {
  return http.createServer((req, res) => {
    let length = 0;
    req.on('data', (c: Buffer) => (length += c.length));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${length}${req.headers.upgrade !== undefined ? ` upgrade=${req.headers.upgrade}` : ''}`);
      res.end(`${who}: ${req.url} ${length}`);
    });
  });
}

const appSeen: string[] = [];
const aliceSeen: string[] = [];
let app: Listening;
let alice: Listening;

before(async () => {
  app = await listen(namedServer('app', appSeen));
  const aliceServer = namedServer('alice', aliceSeen);
  // The client's server also takes WebSocket-style upgrades: 101, then it echoes bytes upper-cased.
  aliceServer.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket, rest: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    if (rest.length > 0) socket.write(rest.toString().toUpperCase());
    socket.on('data', (c: Buffer) => socket.write(c.toString().toUpperCase()));
  });
  alice = await listen(aliceServer);
});
after(async () => {
  await app.close();
  await alice.close();
});

function get(agent: http.Agent, port: number, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ body: string; reused: boolean; status: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ body, reused: req.reusedSocket, status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
  });
}

test('one kept-alive connection mixes matching and non-matching requests, each to its destination', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await get(client, agent.port, '/one', { 'x-dev': 'alice' });
    const second = await get(client, agent.port, '/two');
    const third = await get(client, agent.port, '/three', { 'x-dev': 'alice' });
    assert.deepEqual([first.body, second.body, third.body], ['alice: /one 0', 'app: /two 0', 'alice: /three 0']);
    assert.deepEqual([second.reused, third.reused], [true, true], 'all three on one connection');
    assert.equal(agent.counts.get('a1'), 2);
    assert.deepEqual(agent.dials, ['a1'], 'one upstream per destination, reused');
  } finally {
    client.destroy();
    await agent.close();
  }
});

test('the routes are read per request: an intercept added or removed while a connection lives takes effect at once', async () => {
  const personal = [headerRoute('a1', 'x-dev', 'alice')];
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write('GET /r1 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n');
    await readUntil(socket, (t) => t.includes('alice: /r1'));
    personal.pop();
    socket.write('GET /r2 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n');
    await readUntil(socket, (t) => t.includes('app: /r2'));
    personal.push(headerRoute('a1', 'x-dev', 'alice'));
    socket.write('GET /r3 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n');
    await readUntil(socket, (t) => t.includes('alice: /r3'));
  } finally {
    socket.destroy();
    await agent.close();
  }
});

test('pipelined requests are answered in request order', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  try {
    const requests =
      'GET /p1 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n' +
      'GET /p2 HTTP/1.1\r\nhost: x\r\n\r\n' +
      'POST /p3 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\ncontent-length: 5\r\n\r\nhello' +
      'GET /p4 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n';
    const text = await exchangeRaw(agent.port, requests);
    const bodies = [...text.matchAll(/\r\n\r\n((?:app|alice): \/p\d \d+)/g)].map((m) => m[1]);
    assert.deepEqual(bodies, ['alice: /p1 0', 'app: /p2 0', 'alice: /p3 5', 'app: /p4 0']);
  } finally {
    await agent.close();
  }
});

test('a client that shuts its side after sending still gets every answer', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  try {
    const text = await exchangeRaw(agent.port, 'GET /h1 HTTP/1.1\r\nhost: x\r\n\r\nGET /h2 HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n', true);
    assert.match(text, /app: \/h1 0[\s\S]*alice: \/h2 0/);
  } finally {
    await agent.close();
  }
});

test('chunked request bodies pass through to the matching destination', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  try {
    const chunked = 'POST /c HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nx-trailer: t\r\n\r\n';
    const text = await exchangeRaw(agent.port, `${chunked}GET /after HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    assert.match(text, /alice: \/c 7/);
    assert.match(text, /app: \/after 0/);
  } finally {
    await agent.close();
  }
});

test('a request line over 8 KiB is answered 414 and headers over 64 KiB 431, then the connection closes', async () => {
  const agent = await startAgent({ app: app.port, intercepts: {} });
  try {
    const long = await exchangeRaw(agent.port, `GET /${'a'.repeat(9000)} HTTP/1.1\r\n\r\n`);
    assert.match(long, /^HTTP\/1\.1 414 /);
    const big = await exchangeRaw(agent.port, `GET / HTTP/1.1\r\nx-big: ${'b'.repeat(70 * 1024)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 /);
    assert.match(big, /connection: close/);
    const many = await exchangeRaw(agent.port, `GET / HTTP/1.1\r\n${'x-f: 1\r\n'.repeat(101)}\r\n`);
    assert.match(many, /^HTTP\/1\.1 431 /);
    const smuggle = await exchangeRaw(agent.port, 'POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(smuggle, /^HTTP\/1\.1 400 /);
    assert.equal(agent.appDials(), 0, 'nothing bad reached the app');
  } finally {
    await agent.close();
  }
});

test('a malformed chunked body ends the exchange with an answer, never a hang', async () => {
  const agent = await startAgent({ app: app.port, intercepts: {} });
  try {
    const text = await exchangeRaw(agent.port, 'POST /bad HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXX');
    assert.match(text, /^HTTP\/1\.1 502 /);
  } finally {
    await agent.close();
  }
});

test('openIntercept rejected: the cluster client gets 502 naming the failure, and the connection closes', async () => {
  const failure = new InterceptDialError('nothing listens on localhost:8080 on the laptop', 502);
  const agent = await startAgent({ app: app.port, intercepts: { a1: failure }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  try {
    const text = await exchangeRaw(agent.port, 'GET / HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(text, /connection: close/);
    assert.match(text, /intercept a1 could not take the request: nothing listens on localhost:8080/);
    const timeout = await startAgent({ app: app.port, intercepts: { a1: new InterceptDialError('no answer', 504) }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
    const late = await exchangeRaw(timeout.port, 'GET / HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\n\r\n');
    assert.match(late, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
    await timeout.close();
  } finally {
    await agent.close();
  }
});

test('a WebSocket upgrade on a matching request goes to the client and the connection follows it', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write('GET /ws HTTP/1.1\r\nhost: x\r\nx-dev: alice\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    const head = await readUntil(socket, (t) => t.includes('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 101 /);
    socket.write('hello over the upgrade');
    const echoed = await readUntil(socket, (t) => t.includes('HELLO OVER THE UPGRADE'));
    assert.equal(echoed, 'HELLO OVER THE UPGRADE');
  } finally {
    socket.destroy();
    await agent.close();
  }
});

test('Upgrade: h2c is removed and the request continues as HTTP/1.1', async () => {
  const agent = await startAgent({ app: app.port, intercepts: {} });
  try {
    const text = await exchangeRaw(
      agent.port,
      'GET /h2c HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n',
    );
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /app: \/h2c 0/);
    assert.ok(appSeen.includes('GET /h2c 0'), `the app saw no upgrade: ${appSeen.join('; ')}`);
  } finally {
    await agent.close();
  }
});

test('bytes that are not HTTP are spliced to the app unchanged', async () => {
  const echo = await listen(net.createServer((s) => s.on('data', (c: Buffer) => s.write(Buffer.concat([Buffer.from('echo:'), c])))));
  const agent = await startAgent({ app: echo.port, intercepts: {}, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xff]));
    const text = await readUntil(socket, (t) => t.length >= 11);
    assert.deepEqual(Buffer.from(text, 'latin1'), Buffer.concat([Buffer.from('echo:'), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xff])]));
  } finally {
    socket.destroy();
    await agent.close();
    await echo.close();
  }
});

test('a server-speaks-first protocol: a silent client is spliced to the app after sniffMs', async () => {
  const banner = await listen(net.createServer((s) => s.end('220 smtp ready\r\n')));
  const agent = await startAgent({ app: banner.port, intercepts: {}, sniffMs: 50 });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    assert.equal(await readUntil(socket, (t) => t.endsWith('\r\n')), '220 smtp ready\r\n');
  } finally {
    socket.destroy();
    await agent.close();
    await banner.close();
  }
});

test('a wiretap gets a copy of each request while the app answers', async () => {
  const tapped: string[] = [];
  let arrived: () => void = () => undefined;
  const bothArrived = new Promise<void>((resolve) => (arrived = resolve));
  const tap = await listen(
    http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        tapped.push(`${req.method} ${req.url} ${body}`);
        res.end('thrown away');
        if (tapped.length === 2) arrived();
      });
    }),
  );
  const agent = await startAgent({ app: app.port, intercepts: { w1: tap.port }, wiretaps: ['w1'] });
  try {
    const text = await exchangeRaw(agent.port, 'POST /w HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbodyGET /w2 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.match(text, /app: \/w 4[\s\S]*app: \/w2 0/);
    assert.doesNotMatch(text, /thrown away/);
    await bothArrived;
    assert.deepEqual(tapped, ['POST /w body', 'GET /w2 ']);
    assert.equal(agent.counts.get('w1'), 2);
    assert.deepEqual(agent.dials, ['w1 (mirror)'], 'one copy stream per wiretap per connection');
  } finally {
    await agent.close();
    await tap.close();
  }
});

test('a wiretap whose stream cannot be opened never disturbs the real exchange', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { w1: new InterceptDialError('refused', 502) }, wiretaps: ['w1'] });
  try {
    const text = await exchangeRaw(agent.port, 'GET /solo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.match(text, /app: \/solo 0/);
  } finally {
    await agent.close();
  }
});

test('a reused upstream closed without answering: a bodiless request is sent again on a fresh connection', async () => {
  // Each connection answers its first request, then closes on the next without a word: what a server's idle
  // timeout looks like to a request sent at that moment.
  const server = await listen(
    net.createServer((s) => {
      let answered = false;
      s.on('data', (c: Buffer) => {
        if (answered) return void s.destroy();
        answered = true;
        const path = / (\S+) /.exec(c.toString('latin1'))?.[1] ?? '?';
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
      });
    }),
  );
  const agent = await startAgent({ app: server.port, intercepts: {} });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
    await readUntil(socket, (t) => t.endsWith('/a'));
    socket.write('GET /b HTTP/1.1\r\nhost: x\r\n\r\n');
    await readUntil(socket, (t) => t.endsWith('/b'));
    assert.equal(agent.appDials(), 2);
    socket.write('POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx');
    const failed = await readUntil(socket, (t) => t.includes('without answering'));
    assert.match(failed, /^HTTP\/1\.1 502 /, 'a request with a body is not sent twice');
  } finally {
    socket.destroy();
    await agent.close();
    await server.close();
  }
});

test('a client gone while the destination has not answered closes the destination connection too', async () => {
  let upstreamClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
  // Reads (and ignores) the request, so it sees the agent's close; never answers.
  const silent = await listen(net.createServer((s) => s.resume().on('close', () => upstreamClosed())));
  const agent = await startAgent({ app: silent.port, intercepts: {} });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write('GET /never HTTP/1.1\r\nhost: x\r\n\r\n');
    while (agent.appDials() === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    // A reset: what a vanished client's host answers; a plain FIN is a half-close, and is still answered.
    socket.resetAndDestroy();
    await closed;
  } finally {
    await agent.close();
    await silent.close();
  }
});

test('Expect: 100-continue: the interim answer comes back before the body is sent', async () => {
  const agent = await startAgent({ app: app.port, intercepts: {} });
  const socket = net.connect(agent.port, '127.0.0.1');
  try {
    socket.write('POST /expect HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n');
    assert.match(await readUntil(socket, (t) => t.includes('\r\n\r\n')), /^HTTP\/1\.1 100 Continue\r\n/);
    socket.write('abc');
    assert.match(await readUntil(socket, (t) => t.includes('app: /expect 3')), /200 OK/);
  } finally {
    socket.destroy();
    await agent.close();
  }
});
