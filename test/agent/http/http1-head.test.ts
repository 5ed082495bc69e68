import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HeadCollector, HttpHeadError, parseRequestHead, parseResponseHead, withoutH2cUpgrade } from '../../../src/agent/http/http1-head.js';
import { BodyScanner, requestFraming, responseFraming } from '../../../src/agent/http/http1-body.js';

/** Feeds `bytes` to a collector in pieces cut at `cuts`; the head parsed and the bytes after it. */
function collect(bytes: Buffer, cuts: number[]): { head: ReturnType<typeof parseRequestHead> | undefined; rest: Buffer } {
  const collector = new HeadCollector();
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...points, bytes.length]) {
    const piece = bytes.subarray(from, to);
    const used = collector.push(piece);
    if (collector.complete) return { head: parseRequestHead(collector.bytes()), rest: bytes.subarray(from + used) };
    from = to;
  }
  return { head: undefined, rest: Buffer.alloc(0) };
}

const token = fc.stringMatching(/^[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/);
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
  path: fc.webPath().map((p) => (p === '' ? '/' : p.replace(/[^\x21-\x7e]/g, '_'))),
  minor: fc.constantFrom(0, 1),
  headers: fc.array(fc.tuple(token, value), { maxLength: 12 }),
  after: fc.uint8Array({ maxLength: 40 }),
});

function serialize(r: { method: string; path: string; minor: number; headers: [string, string][] }): string {
  return `${r.method} ${r.path} HTTP/1.${r.minor}\r\n${r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}

test('property: any split of a request gives the same head and leaves the same bytes after it', () => {
  fc.assert(
    fc.property(request, fc.array(fc.nat(), { maxLength: 12 }), (r, cuts) => {
      const head = Buffer.from(serialize(r), 'latin1');
      const bytes = Buffer.concat([head, r.after]);
      const whole = collect(bytes, []);
      const split = collect(bytes, cuts);
      assert.ok(whole.head !== undefined);
      assert.deepEqual(split.head, whole.head);
      assert.deepEqual(split.rest, Buffer.from(r.after));
      assert.deepEqual(whole.head.raw, head, 'the head is kept byte for byte');
      assert.equal(whole.head.method, r.method);
      assert.equal(whole.head.target, r.path);
      assert.deepEqual(whole.head.headers, r.headers.map(([n, v]) => [n.toLowerCase(), v]));
    }),
  );
});

test('property: garbage never throws anything but HttpHeadError, whatever the split', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }), (input, cuts) => {
      const bytes = Buffer.from(input);
      try {
        const whole = collect(bytes, []);
        const split = collect(bytes, cuts);
        assert.deepEqual(split.head, whole.head);
        if (whole.head !== undefined) requestFraming(whole.head.headers);
      } catch (error) {
        if (!(error instanceof HttpHeadError)) throw error;
      }
    }),
  );
});

function rejects(text: string, status: number): void {
  assert.throws(() => collect(Buffer.from(text, 'latin1'), []), (e: unknown) => e instanceof HttpHeadError && e.status === status, text);
}

test('ambiguous heads are refused with 400', () => {
  rejects('GET / HTTP/1.1\r\nx: a\nb: c\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nx: a\r\n folded\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nx : a\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n', 400);
  rejects('GET  / HTTP/1.1\r\n\r\n', 400);
  rejects('GET / HTTP/2.0\r\n\r\n', 400);
  const framing = (headers: [string, string][]): unknown => requestFraming(headers);
  assert.throws(() => framing([['content-length', '3'], ['transfer-encoding', 'chunked']]), HttpHeadError);
  assert.throws(() => framing([['content-length', '3'], ['content-length', '4']]), HttpHeadError);
  assert.throws(() => framing([['content-length', '-1']]), HttpHeadError);
  assert.throws(() => framing([['transfer-encoding', 'chunked, gzip']]), HttpHeadError);
  assert.deepEqual(framing([['content-length', '3, 3']]), { kind: 'length', length: 3 });
});

test('empty lines before a request line are skipped', () => {
  const { head } = collect(Buffer.from('\r\n\r\nGET /x HTTP/1.1\r\n\r\n', 'latin1'), [1, 3]);
  assert.equal(head?.target, '/x');
  assert.equal(head?.raw.toString('latin1'), 'GET /x HTTP/1.1\r\n\r\n');
});

test('response framing follows RFC 9112 §6.3', () => {
  const head = parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n', 'latin1'));
  assert.deepEqual(responseFraming(head.status, head.headers, 'GET'), { kind: 'length', length: 5 });
  assert.deepEqual(responseFraming(head.status, head.headers, 'HEAD'), { kind: 'none' });
  assert.deepEqual(responseFraming(204, [], 'GET'), { kind: 'none' });
  assert.deepEqual(responseFraming(304, [['content-length', '9']], 'GET'), { kind: 'none' });
  assert.deepEqual(responseFraming(100, [], 'GET'), { kind: 'none' });
  assert.deepEqual(responseFraming(200, [], 'GET'), { kind: 'close' });
  assert.deepEqual(responseFraming(200, [['transfer-encoding', 'gzip, chunked']], 'GET'), { kind: 'chunked' });
  assert.deepEqual(responseFraming(200, [['transfer-encoding', 'gzip']], 'GET'), { kind: 'close' });
});

test('an h2c upgrade offer is removed with its Connection tokens; other fields keep their bytes', () => {
  const head = parseRequestHead(
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\nX-A:  b \r\n\r\n', 'latin1'),
  );
  assert.equal(withoutH2cUpgrade(head).toString('latin1'), 'GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-A:  b \r\n\r\n');
  const both = parseRequestHead(Buffer.from('GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n', 'latin1'));
  assert.equal(withoutH2cUpgrade(both).toString('latin1'), 'GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  const none = parseRequestHead(Buffer.from('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n', 'latin1'));
  assert.equal(withoutH2cUpgrade(none), none.raw);
});

/** A chunked encoding of `pieces` with a trailer. */
function chunked(pieces: Uint8Array[], extension: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const p of pieces.filter((x) => x.length > 0)) {
    parts.push(Buffer.from(`${p.length.toString(16)}${extension ? ';a=b' : ''}\r\n`), Buffer.from(p), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\nx-t: 1\r\n\r\n'));
  return Buffer.concat(parts);
}

test('property: the chunked scanner ends exactly at the end of the body, whatever the split', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 70 }), { maxLength: 6 }), fc.boolean(), fc.uint8Array({ maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (pieces, ext, after, cuts) => {
      const body = chunked(pieces, ext);
      const bytes = Buffer.concat([body, after]);
      const scanner = new BodyScanner({ kind: 'chunked' });
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      let used = 0;
      let from = 0;
      for (const to of [...points, bytes.length]) {
        if (scanner.done) break;
        used += scanner.consume(bytes.subarray(from, to));
        from = to;
      }
      assert.ok(scanner.done);
      assert.equal(used, body.length);
    }),
  );
});

test('malformed chunked framing is refused', () => {
  for (const text of ['x\r\n', '5\r\nabcdeX', '5\nabcde', '1234567890abc\r\n', `1;${'e'.repeat(5000)}\r\n`]) {
    assert.throws(() => new BodyScanner({ kind: 'chunked' }).consume(Buffer.from(text)), HttpHeadError, text);
  }
  const length = new BodyScanner({ kind: 'length', length: 3 });
  assert.equal(length.consume(Buffer.from('abcdef')), 3);
  assert.ok(length.done);
});
