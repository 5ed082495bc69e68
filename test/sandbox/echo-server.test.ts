import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect as connectHttp2 } from 'node:http2';
import { connect as connectTcp, type Server } from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { formatEchoText, parseEchoArgs, startEchoServer, type EchoReply } from '../../src/sandbox/workloads/echo-server.js';

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  localPort: number;
}

function get(port: number, host: string, path: string, headers: Record<string, string> = {}, body?: string, agent?: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: body === undefined ? 'GET' : 'POST', headers, ...(agent === undefined ? {} : { agent }) }, (res) => {
      const localPort = res.socket.localPort ?? 0;
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers, localPort }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('parses its flags, refusing unknown ones and bad ports', () => {
  assert.deepEqual(parseEchoArgs(['--pod', 'echo-abcde-fghjk', '--namespace', 'shop', '--port', '8080']), {
    pod: 'echo-abcde-fghjk',
    namespace: 'shop',
    port: 8080,
  });
  assert.throws(() => parseEchoArgs(['--port', '70000']));
  assert.throws(() => parseEchoArgs(['--bogus', 'x']));
  assert.throws(() => parseEchoArgs(['--pod']));
});

test('answers with its pod name and the client address and port, as JSON or text, on IPv4 and IPv6', async () => {
  const servers = await startEchoServer({ pod: 'echo-test-x2k9q', namespace: 'default', port: 0, hosts: { ipv4: '127.0.0.1', ipv6: '::1' } });
  try {
    const port = (servers[0]!.address() as { port: number }).port;
    const json = await get(port, '127.0.0.1', '/hello?format=json', {}, 'abc');
    assert.equal(json.status, 200);
    const reply = JSON.parse(json.text) as EchoReply;
    assert.equal(reply.pod, 'echo-test-x2k9q');
    assert.equal(reply.client.address, '127.0.0.1');
    assert.ok(reply.client.port > 0);
    assert.equal(reply.server.port, port);
    assert.equal(reply.path, '/hello?format=json');
    assert.equal(reply.bodyBytes, 3);
    const byHeader = JSON.parse((await get(port, '::1', '/', { accept: 'application/json' })).text) as EchoReply;
    assert.equal(byHeader.client.address, '::1');
    const text = await get(port, '127.0.0.1', '/t');
    assert.match(text.text, /^pod: echo-test-x2k9q\nnamespace: default\nclient: 127\.0\.0\.1 port \d+\n/);
  } finally {
    for (const s of servers) s.close();
  }
});

test('the text form has one field per line', () => {
  const reply: EchoReply = {
    pod: 'p',
    namespace: 'n',
    client: { address: '10.244.0.12', port: 4000 },
    server: { address: '10.244.0.11', port: 80 },
    method: 'GET',
    path: '/',
    host: 'echo',
    bodyBytes: 0,
    httpVersion: '1.1',
  };
  assert.equal(
    formatEchoText(reply),
    'pod: p\nnamespace: n\nclient: 10.244.0.12 port 4000\nserver: 10.244.0.11 port 80\nrequest: GET / host echo\nbody bytes: 0\n',
  );
});

async function withEcho(fn: (port: number) => Promise<void>): Promise<void> {
  const servers: Server[] = await startEchoServer({ pod: 'echo-test-x2k9q', namespace: 'default', port: 0, hosts: { ipv4: '127.0.0.1', ipv6: '::1' } });
  try {
    await fn((servers[0]!.address() as { port: number }).port);
  } finally {
    for (const s of servers) s.close();
  }
}

test('HTTP/1.1: x-served-by on every reply, the request headers with ?headers=1, several requests on one kept-alive connection', async () => {
  await withEcho(async (port) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(port, '127.0.0.1', '/a?format=json&headers=1', { 'x-dev': 'alice' }, undefined, agent);
      assert.equal(first.headers['x-served-by'], 'echo-test-x2k9q');
      const reply = JSON.parse(first.text) as EchoReply;
      assert.equal(reply.httpVersion, '1.1');
      assert.equal(reply.headers?.['x-dev'], 'alice');
      const second = await get(port, '127.0.0.1', '/b?format=json', {}, undefined, agent);
      assert.equal(second.localPort, first.localPort, 'the same connection');
      assert.equal((JSON.parse(second.text) as EchoReply).headers, undefined, 'headers only when asked');
      const text = await get(port, '127.0.0.1', '/c?headers=1', { 'x-dev': 'bob' });
      assert.match(text.text, /\nheader: x-dev: bob\n/);
    } finally {
      agent.destroy();
    }
  });
});

test('HTTP/2 with prior knowledge on the same port: the same reply, x-served-by, headers, several streams on one connection', async () => {
  await withEcho(async (port) => {
    const session = connectHttp2(`http://127.0.0.1:${port}`);
    try {
      const ask = (path: string, headers: Record<string, string> = {}): Promise<{ headers: Record<string, unknown>; reply: EchoReply }> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': path, accept: 'application/json', ...headers });
          let text = '';
          let responseHeaders: Record<string, unknown> = {};
          stream.on('response', (h) => (responseHeaders = h));
          stream.setEncoding('utf8').on('data', (c: string) => (text += c));
          stream.on('end', () => resolve({ headers: responseHeaders, reply: JSON.parse(text) as EchoReply }));
          stream.on('error', reject);
          stream.end();
        });
      const [one, two] = await Promise.all([ask('/one?headers=1', { 'x-dev': 'alice' }), ask('/two')]);
      assert.equal(one.headers['x-served-by'], 'echo-test-x2k9q');
      assert.equal(one.headers[':status'], 200);
      assert.equal(one.reply.pod, 'echo-test-x2k9q');
      assert.equal(one.reply.httpVersion, '2.0');
      assert.equal(one.reply.path, '/one?headers=1');
      assert.equal(one.reply.host, `127.0.0.1:${port}`);
      assert.equal(one.reply.headers?.['x-dev'], 'alice');
      assert.equal(one.reply.client.address, '127.0.0.1');
      assert.equal(two.reply.path, '/two');
      assert.equal(two.reply.client.port, one.reply.client.port, 'one connection');
    } finally {
      session.close();
    }
  });
});

/** Reads HTTP/2 frames from the socket until one of `type` with `flags` arrives. */
async function frameArrives(socket: import('node:net').Socket, type: number, flags: number): Promise<void> {
  let buffer = Buffer.alloc(0);
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer[3] === type && buffer[4] === flags) return;
      buffer = buffer.subarray(9 + length);
    }
  }
  throw new Error('the connection ended first');
}

test('a preface arriving in pieces is still HTTP/2 (the server acknowledges the SETTINGS that follow it)', async () => {
  await withEcho(async (port) => {
    const socket = connectTcp(port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
      socket.write(preface.subarray(0, 5));
      await new Promise((r) => setTimeout(r, 50));
      socket.write(Buffer.concat([preface.subarray(5), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      await frameArrives(socket, 4, 1);
    } finally {
      socket.destroy();
    }
  });
});

test('an h2c Upgrade request is answered as plain HTTP/1.1 (the upgrade ignored)', async () => {
  await withEcho(async (port) => {
    const socket = connectTcp(port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      socket.end('GET /up HTTP/1.1\r\nHost: echo\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n');
      let text = '';
      socket.setEncoding('utf8').on('data', (c: string) => (text += c));
      await once(socket, 'end');
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /\r\nx-served-by: echo-test-x2k9q\r\n/);
      assert.match(text, /\r\n\r\npod: echo-test-x2k9q\n/);
      assert.match(text, /request: GET \/up host echo\n/);
    } finally {
      socket.destroy();
    }
  });
});

test('WebSocket: the upgrade answers with x-served-by and each message comes back prefixed with the pod name', async () => {
  await withEcho(async (port) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`);
    try {
      // 'open' follows 'upgrade' at once: both are waited for together.
      const [[response]] = (await Promise.all([once(ws, 'upgrade'), once(ws, 'open')])) as [[{ headers: Record<string, string> }], unknown];
      assert.equal(response.headers['x-served-by'], 'echo-test-x2k9q');
      const replies: string[] = [];
      const both = new Promise<void>((resolve) => ws.on('message', (data: Buffer) => replies.push(data.toString()) === 2 && resolve()));
      ws.send('hello');
      ws.send('again');
      await both;
      assert.deepEqual(replies, ['echo-test-x2k9q: hello', 'echo-test-x2k9q: again']);
    } finally {
      ws.terminate();
    }
  });
});
