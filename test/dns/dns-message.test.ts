import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DnsFormatError,
  DnsType,
  buildDnsMessage,
  nameEquals,
  parseDnsMessage,
  type DnsMessage,
  type DnsName,
  type DnsRecord,
} from '../../src/dns/dns-message.js';

// Labels of any bytes (latin1), including dots and upper case, kept within RFC 1035's size limits.
const label = fc
  .uint8Array({ minLength: 1, maxLength: 63 })
  .map((bytes) => Buffer.from(bytes).toString('latin1'));
const name: fc.Arbitrary<DnsName> = fc
  .array(fc.oneof(label, fc.constantFrom('svc', 'cluster', 'local', 'Default', 'default', 'echo', 'ECHO')), { maxLength: 5 })
  .filter((labels) => labels.reduce((sum, l) => sum + l.length + 1, 1) <= 255);

const nameRdata = (n: DnsName): Buffer =>
  Buffer.concat([...n.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);

const record: fc.Arbitrary<DnsRecord> = fc.record({
  name,
  class: fc.integer({ min: 0, max: 0xffff }),
  ttl: fc.nat({ max: 0xffffffff }),
}).chain((base) =>
  fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }).map((ip) => ({ ...base, type: DnsType.A, data: Buffer.from(ip) })),
    fc.uint8Array({ maxLength: 300 }).map((raw) => ({ ...base, type: DnsType.TXT, data: Buffer.from(raw) })),
    name.map((target) => ({ ...base, type: DnsType.CNAME, data: nameRdata(target) })),
    fc.tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), name).map(([fixed, target]) => ({
      ...base,
      type: DnsType.SRV,
      data: Buffer.concat([Buffer.from(fixed), nameRdata(target)]),
    })),
    fc.tuple(name, name, fc.uint8Array({ minLength: 20, maxLength: 20 })).map(([a, b, fixed]) => ({
      ...base,
      type: DnsType.SOA,
      data: Buffer.concat([nameRdata(a), nameRdata(b), Buffer.from(fixed)]),
    })),
  ),
);

const message: fc.Arbitrary<DnsMessage> = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  flags: fc.integer({ min: 0, max: 0xffff }),
  questions: fc.array(fc.record({ name, type: fc.integer({ min: 0, max: 0xffff }), class: fc.integer({ min: 0, max: 0xffff }) }), {
    maxLength: 3,
  }),
  answers: fc.array(record, { maxLength: 4 }),
  authorities: fc.array(record, { maxLength: 2 }),
  additionals: fc.array(record, { maxLength: 2 }),
});

/** The message as ordinary objects (fast-check builds records without a prototype). */
function plain(m: DnsMessage): DnsMessage {
  const records = (list: DnsRecord[]): DnsRecord[] => list.map((r) => ({ ...r }));
  return {
    ...m,
    questions: m.questions.map((q) => ({ ...q })),
    answers: records(m.answers),
    authorities: records(m.authorities),
    additionals: records(m.additionals),
  };
}

test('parse(build(message)) gives the message back, names with their exact bytes and case', () => {
  fc.assert(
    fc.property(message, (m) => {
      assert.deepEqual(parseDnsMessage(buildDnsMessage(m)), plain(m));
    }),
  );
});

test('compression makes repeated names smaller and still reads back', () => {
  const owner = ['echo', 'default', 'svc', 'cluster', 'local'];
  const m: DnsMessage = {
    id: 7,
    flags: 0x8180,
    questions: [{ name: owner, type: DnsType.A, class: 1 }],
    answers: [1, 2, 3].map((i) => ({ name: owner, type: DnsType.A, class: 1, ttl: 5, data: Buffer.from([10, 96, 0, i]) })),
    authorities: [],
    additionals: [],
  };
  const wire = buildDnsMessage(m);
  // 12 header + 32 question name + 4 + three records of (2 pointer + 10 + 4).
  assert.equal(wire.length, 12 + 32 + 4 + 3 * 16);
  assert.deepEqual(parseDnsMessage(wire), m);
});

test('compressed names in a real answer (as dnsmasq sends it) are expanded, RDATA included', () => {
  // Question echo.svc; answer: pointer to the question name, CNAME whose RDATA is "x" + pointer.
  const header = '000181800001000100000000';
  const question = '046563686f' + '03737663' + '00' + '00010001';
  const answer = 'c00c' + '0005' + '0001' + '0000003c' + '0004' + '0178c00c';
  const wire = Buffer.from(header + question + answer, 'hex');
  const parsed = parseDnsMessage(wire);
  assert.deepEqual(parsed.answers[0]!.name, ['echo', 'svc']);
  assert.deepEqual(parsed.answers[0]!.data, nameRdata(['x', 'echo', 'svc']));
});

test('any bytes parse to a message or throw DnsFormatError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        parseDnsMessage(Buffer.from(bytes));
      } catch (error) {
        assert.ok(error instanceof DnsFormatError, String(error));
      }
    }),
  );
  fc.assert(
    fc.property(message, fc.nat(), fc.nat({ max: 255 }), (m, at, value) => {
      const wire = Buffer.from(buildDnsMessage(m));
      if (wire.length > 0) wire[at % wire.length] = value;
      try {
        parseDnsMessage(wire.subarray(0, wire.length - (at % 3)));
      } catch (error) {
        assert.ok(error instanceof DnsFormatError, String(error));
      }
    }),
  );
});

test('a pointer loop is refused', () => {
  const wire = Buffer.from('000100000001000000000000c00c00010001', 'hex');
  assert.throws(() => parseDnsMessage(wire), DnsFormatError);
});

test('names compare without regard to ASCII case', () => {
  assert.ok(nameEquals(['Echo', 'DEFAULT'], ['echo', 'default']));
  assert.ok(!nameEquals(['echo'], ['echo', 'default']));
  assert.ok(!nameEquals(['\xc9'], ['\xe9']));
});
