// Fuzzes the agent's HTTP/1.x request reading (head collector, head parser, body framing, chunked scanner) over a
// stream of pipelined requests from a cluster client: only HttpHeadError may be thrown, what is read does not
// depend on how the stream is cut into chunks (a client chooses its TCP segments), and no input is slow.

import { test } from 'node:test';
import { assertSame, fuzz } from './fuzz-harness.js';
import { HeadCollector, HttpHeadError, parseRequestHead } from '../../src/agent/http/http1-head.js';
import { BodyScanner, requestFraming } from '../../src/agent/http/http1-body.js';

interface Read {
  /** Per request: method, target, field count, body bytes. */
  requests: string[];
  error: string;
}

/** Reads requests one after another from `stream` pushed in chunks of `sizes` (cycled), as the agent does. */
function read(stream: Buffer, sizes: number[]): Read {
  const result: Read = { requests: [], error: '' };
  let collector: HeadCollector | undefined = new HeadCollector();
  let body: BodyScanner | undefined;
  let bodyBytes = 0;
  let summary = '';
  try {
    for (let at = 0, i = 0; at < stream.length; i++) {
      let chunk = stream.subarray(at, Math.min(stream.length, at + sizes[i % sizes.length]!));
      at += chunk.length;
      while (chunk.length > 0) {
        if (collector !== undefined) {
          const used = collector.push(chunk);
          chunk = chunk.subarray(used);
          if (!collector.complete) continue;
          const head = parseRequestHead(collector.bytes());
          summary = `${head.method} ${head.target} ${head.headers.length}`;
          body = new BodyScanner(requestFraming(head.headers));
          collector = undefined;
          bodyBytes = 0;
        }
        const used = body!.consume(chunk);
        bodyBytes += used;
        chunk = chunk.subarray(used);
        if (body!.done) {
          result.requests.push(`${summary} ${bodyBytes}`);
          collector = new HeadCollector();
        }
      }
    }
  } catch (caught) {
    if (!(caught instanceof HttpHeadError)) throw caught;
    result.error = `${caught.status} ${caught.message}`;
  }
  return result;
}

const CORPUS = [
  'GET / HTTP/1.1\r\nhost: echo\r\nx-dev: alice\r\n\r\n',
  'POST /api/v1 HTTP/1.1\r\nhost: echo\r\ncontent-length: 5\r\n\r\nhelloGET /next HTTP/1.0\r\n\r\n',
  'PUT /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: t\r\n\r\nGET / HTTP/1.1\r\n\r\n',
  '\r\nGET /ws HTTP/1.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n',
  'GET / HTTP/1.1\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n',
  'POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
].map((text) => Buffer.from(text, 'latin1'));

const TOKENS = ['\r\n', '\r\n\r\n', '\n', '\r', ':', ' ', '\t', 'HTTP/1.1', 'content-length: ', 'transfer-encoding: chunked', ',', ';', '0\r\n\r\n', 'ffffffffffff', '\x00', '\xff'].map(
  (w) => Buffer.from(w, 'latin1'),
);

test('fuzz: HTTP/1.x requests, pipelined and cut into chunks', (t) => {
  fuzz(
    {
      name: 'http-request',
      corpus: CORPUS.flatMap((stream) => [0, 1, 2].map((cut) => Buffer.concat([Buffer.from([cut]), stream]))),
      dictionary: TOKENS,
      maxLength: 16 * 1024,
      run(input) {
        const stream = input.subarray(1);
        const whole = read(stream, [stream.length || 1]);
        const cut = input[0]! % 3;
        const sizes = cut === 0 ? [1, 7] : cut === 1 ? [8] : [1 + (input.length % 97), 3, 1 + (input.length % 1021)];
        assertSame(read(stream, sizes), whole, 'what was read depends on how the stream was cut');
      },
      isParserError: (error) => error instanceof HttpHeadError,
    },
    t,
  );
});
