import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { InterceptDialError } from '../../../src/agent/http/http-routing.js';
import { headerRoute, listen, startAgent, type Listening } from './routing-fixture.js';

/** An h2c server answering `who: path body-length`, echoing request trailers as response trailers. */
function namedServer(who: string): http2.Http2Server {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    let length = 0;
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on('data', (c: Buffer) => (length += c.length));
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => (trailers = t));
    stream.on('end', () => {
      if (headers[':path'] === '/reset') return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      stream.respond({ ':status': 200, 'x-who': who }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-echo': String(trailers['x-check'] ?? 'none') }));
      stream.end(`${who}: ${String(headers[':path'])} ${length}`);
    });
  });
  return server;
}

let app: Listening;
let alice: Listening;

before(async () => {
  app = await listen(namedServer('app') as unknown as import('node:net').Server);
  alice = await listen(namedServer('alice') as unknown as import('node:net').Server);
});
after(async () => {
  await app.close();
  await alice.close();
});

interface Answer {
  status: number;
  body: string;
  trailers: http2.IncomingHttpHeaders;
  rstCode?: number;
}

function request(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}, body?: string, trailers?: http2.OutgoingHttpHeaders): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined, waitForTrailers: trailers !== undefined });
    if (trailers !== undefined) stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    if (body !== undefined) stream.end(body);
    let status = 0;
    let text = '';
    let got: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('trailers', (t) => (got = t));
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (text += c));
    stream.on('error', () => undefined);
    stream.on('close', () => resolve({ status, body: text, trailers: got, rstCode: stream.rstCode }));
    session.on('error', reject);
  });
}

test('HTTP/2 prior knowledge: each stream goes to its destination, on one inbound connection', async () => {
  const agent = await startAgent({ app: app.port, intercepts: { a1: alice.port }, personal: [headerRoute('a1', 'x-dev', 'alice')] });
  const session = http2.connect(`http://127.0.0.1:${agent.port}`);
  try {
    const answers = await Promise.all([
      request(session, '/one', { 'x-dev': 'alice' }),
      request(session, '/two'),
      request(session, '/three', { 'x-dev': 'alice' }, 'body!', { 'x-check': 'kept' }),
      request(session, '/four', {}, 'abc'),
    ]);
    assert.deepEqual(
      answers.map((a) => a.body),
      ['alice: /one 0', 'app: /two 0', 'alice: /three 5', 'app: /four 3'],
    );
    assert.equal(answers[2]!.trailers['x-echo'], 'kept', 'request and response trailers pass');
    assert.equal(agent.counts.get('a1'), 2);
    assert.deepEqual(agent.dials, ['a1'], 'one h2c session per destination');
    assert.equal(agent.appDials(), 1);
  } finally {
    session.destroy();
    await agent.close();
  }
});

test('HTTP/2: a destination resetting a stream resets the inbound stream', async () => {
  const agent = await startAgent({ app: app.port, intercepts: {} });
  const session = http2.connect(`http://127.0.0.1:${agent.port}`);
  try {
    const answer = await request(session, '/reset');
    assert.equal(answer.rstCode, http2.constants.NGHTTP2_REFUSED_STREAM);
    const next = await request(session, '/after');
    assert.equal(next.body, 'app: /after 0', 'the connection goes on');
  } finally {
    session.destroy();
    await agent.close();
  }
});

test('HTTP/2: openIntercept rejected answers the stream 502 and others still work', async () => {
  const agent = await startAgent({
    app: app.port,
    intercepts: { a1: new InterceptDialError('nothing listens on localhost:8080', 502) },
    personal: [headerRoute('a1', 'x-dev', 'alice')],
  });
  const session = http2.connect(`http://127.0.0.1:${agent.port}`);
  try {
    const failed = await request(session, '/x', { 'x-dev': 'alice' }, 'a body no one takes'.repeat(10_000));
    assert.equal(failed.status, 502);
    assert.match(failed.body, /intercept a1 could not take the request: nothing listens/);
    assert.equal((await request(session, '/y')).body, 'app: /y 0');
  } finally {
    session.destroy();
    await agent.close();
  }
});

test('HTTP/2: a wiretap gets each stream as a copy while the app answers', async () => {
  const copies: string[] = [];
  let arrived: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (arrived = resolve));
  const tapServer = http2.createServer();
  tapServer.on('stream', (stream, headers) => {
    let body = '';
    stream.on('data', (c: Buffer) => (body += c.toString()));
    stream.on('end', () => {
      copies.push(`${String(headers[':path'])} ${body}`);
      stream.respond({ ':status': 200 });
      stream.end('thrown away');
      if (copies.length === 2) arrived();
    });
  });
  const tap = await listen(tapServer as unknown as import('node:net').Server);
  const agent = await startAgent({ app: app.port, intercepts: { w1: tap.port }, wiretaps: ['w1'] });
  const session = http2.connect(`http://127.0.0.1:${agent.port}`);
  try {
    const answers = await Promise.all([request(session, '/t1', {}, 'copy me'), request(session, '/t2')]);
    assert.deepEqual(answers.map((a) => a.body), ['app: /t1 7', 'app: /t2 0']);
    await done;
    assert.deepEqual(copies.sort(), ['/t1 copy me', '/t2 ']);
    assert.equal(agent.counts.get('w1'), 2);
  } finally {
    session.destroy();
    await agent.close();
    await tap.close();
  }
});
