import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { sniffProtocol } from '../../../src/agent/http/http-routing.js';
import { WiretapCopy } from '../../../src/agent/http/wiretap-copy.js';

/** A real Writable whose consumer never takes anything: a wiretap that stopped reading. */
function stuck(): Writable {
  return new Writable({ highWaterMark: 1024, write: () => undefined });
}

test('a wiretap that stops reading is dropped once its copy exceeds the bound; writing never waits', async () => {
  const target = stuck();
  const reasons: string[] = [];
  const copy = new WiretapCopy(Promise.resolve(target), (reason) => reasons.push(reason), 64 * 1024);
  await Promise.resolve();
  const chunk = Buffer.alloc(8 * 1024);
  for (let i = 0; i < 20; i++) copy.write(chunk);
  assert.ok(copy.dropped);
  assert.ok(target.destroyed, 'the copy stream is closed');
  assert.deepEqual(reasons, ['the wiretap is slower than the traffic'], 'reported once');
});

test('bytes written while the wiretap is being opened are delivered in order, within the bound', async () => {
  const got: Buffer[] = [];
  let open: (w: Writable) => void = () => undefined;
  const copy = new WiretapCopy(new Promise<Writable>((resolve) => (open = resolve)), () => assert.fail('not dropped'), 16);
  copy.write(Buffer.from('head '));
  copy.write(Buffer.from('body'));
  copy.end();
  const finished = new Promise<void>((resolve) => {
    const target = new Writable({
      write: (c: Buffer, _e, done) => {
        got.push(c);
        done();
      },
    });
    target.on('finish', resolve);
    open(target);
  });
  await finished;
  assert.equal(Buffer.concat(got).toString(), 'head body');
  const over = new WiretapCopy(new Promise<Writable>(() => undefined), () => undefined, 4);
  over.write(Buffer.from('too long'));
  assert.ok(over.dropped, 'the wait for the stream is bounded too');
});

test('sniffing: the h2 preface, an HTTP/1 method, or anything else', () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  assert.equal(sniffProtocol(preface), 'h2');
  assert.equal(sniffProtocol(preface.subarray(0, 10)), 'more');
  assert.equal(sniffProtocol(Buffer.from('PRI /x HTTP/1.1')), 'h1');
  assert.equal(sniffProtocol(Buffer.from('GET / HTTP/1.1')), 'h1');
  assert.equal(sniffProtocol(Buffer.from('\r\nPOST /')), 'h1');
  assert.equal(sniffProtocol(Buffer.from('GE')), 'more');
  assert.equal(sniffProtocol(Buffer.from([0x16, 0x03, 0x01])), 'other');
  assert.equal(sniffProtocol(Buffer.from(' GET')), 'other');
  assert.equal(sniffProtocol(Buffer.from('A'.repeat(30))), 'other');
  assert.equal(sniffProtocol(Buffer.from('*1\r\n$4\r\nPING\r\n')), 'other');
});
