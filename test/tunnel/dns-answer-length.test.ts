// TunnelClient.dnsQuery's DNS over HTTP (a stream per query, what it falls back to when the manager has no DNS
// stream) against a stand-in manager (a bare HTTP/2 server), for what the real one does not do on purpose: an
// answer whose END_STREAM comes late, one without a length, one cut short of its length.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TunnelClient, TunnelError } from '../../src/tunnel/tunnel-client.js';
import { DNS_QUERY_PATH } from '../../src/tunnel/protocol.js';

const ANSWER = Buffer.from('thirty bytes of a DNS answer..');
const QUERY = Buffer.alloc(12);

async function standIn(t: TestContext, answer: (stream: http2.ServerHttp2Stream) => void): Promise<TunnelClient> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.resume();
    // Anything else (the DNS stream) is unknown here, as to a manager from before it: the client falls back.
    if (headers[':path'] === DNS_QUERY_PATH) answer(stream);
    else stream.respond({ ':status': 404 }, { endStream: true });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = await TunnelClient.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { heartbeat: false });
  t.after(() => {
    client.close();
    server.close();
  });
  return client;
}

/** `promise`, or a rejection naming `what` once `ms` have passed. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  const timer = sleep(ms, undefined, { ref: false }).then(() => Promise.reject(new Error(`no answer within ${ms} ms: ${what}`)));
  return Promise.race([promise, timer]);
}

test('an answer with a content-length is taken at its last byte, before END_STREAM (stand-in manager that holds END_STREAM)', async (t) => {
  const client = await standIn(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/dns-message', 'content-length': ANSWER.length });
    stream.write(ANSWER.subarray(0, 10));
    setTimeout(() => stream.write(ANSWER.subarray(10)), 20);
  });
  assert.deepEqual(await within(2000, 'it waited for END_STREAM', client.dnsQuery(QUERY)), ANSWER);
});

test('an answer without a content-length is taken at END_STREAM (stand-in manager)', async (t) => {
  const client = await standIn(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/dns-message' });
    stream.write(ANSWER.subarray(0, 10));
    setTimeout(() => stream.end(ANSWER.subarray(10)), 50);
  });
  assert.deepEqual(await within(2000, 'the answer was lost', client.dnsQuery(QUERY)), ANSWER);
});

test('an answer that ends short of its content-length is an error, not a short answer (stand-in manager)', async (t) => {
  const client = await standIn(t, (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/dns-message', 'content-length': ANSWER.length });
    stream.end(ANSWER.subarray(0, 10));
  });
  await assert.rejects(within(2000, 'the cut answer hung', client.dnsQuery(QUERY)), (error: unknown) => {
    assert.ok(error instanceof TunnelError, String(error));
    assert.equal(error.code, 'CONNECTION');
    return true;
  });
});
