import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { formatEchoText, parseEchoArgs, startEchoServer, type EchoReply } from '../../src/sandbox/workloads/echo-server.js';

function get(port: number, host: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
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
  };
  assert.equal(
    formatEchoText(reply),
    'pod: p\nnamespace: n\nclient: 10.244.0.12 port 4000\nserver: 10.244.0.11 port 80\nrequest: GET / host echo\nbody bytes: 0\n',
  );
});
