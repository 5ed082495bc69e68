import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compressionChain } from './compression-chain.js';
import {
  DnsFlag,
  DnsFormatError,
  DnsType,
  MAX_POINTER_HOPS,
  MAX_RECORDS,
  buildDnsMessage,
  buildDnsMessageWithin,
  parseDnsQuery,
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
    maxLength: 1,
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

test(`a name may follow ${MAX_POINTER_HOPS} compression pointers, not more`, () => {
  assert.equal(parseDnsMessage(compressionChain(MAX_POINTER_HOPS)).answers.at(-1)!.name.join('.'), 'a');
  assert.throws(() => parseDnsMessage(compressionChain(MAX_POINTER_HOPS + 1)), /more than 32 compression pointers/);
});

test('record counts are capped, and counts the message is too short to hold are refused before reading', () => {
  assert.throws(() => parseDnsMessage(compressionChain(MAX_RECORDS + 1)), /at most 512 are accepted/);
  const lying = Buffer.from(compressionChain(1));
  lying.writeUInt16BE(40, 6);
  assert.throws(() => parseDnsMessage(lying), /counts more questions and records than its length can hold/);
  const twoQuestions = Buffer.from('000100000002000000000000' + '0161000001000101620000010001', 'hex');
  assert.throws(() => parseDnsMessage(twoQuestions), /2 questions/);
});

test('a query has exactly one question and no answer or authority records', () => {
  const ask = (questions: number, answers: number): Buffer =>
    buildDnsMessage({
      id: 1,
      flags: 0,
      questions: Array.from({ length: questions }, () => ({ name: ['a'], type: DnsType.A, class: 1 })),
      answers: Array.from({ length: answers }, () => ({ name: ['a'], type: DnsType.A, class: 1, ttl: 1, data: Buffer.from([1, 2, 3, 4]) })),
      authorities: [],
      additionals: [],
    });
  assert.equal(parseDnsQuery(ask(1, 0)).questions.length, 1);
  assert.throws(() => parseDnsQuery(ask(0, 0)), DnsFormatError);
  assert.throws(() => parseDnsQuery(ask(1, 1)), DnsFormatError);
});

/**
 * CPU microseconds `work` costs. process.cpuUsage counts every thread of the process, the JIT compiler's and the
 * GC's included, so the work is done once to compile it and the best of three runs is what it costs.
 */
function cpuMicros(work: () => void): number {
  work();
  return Math.min(
    ...Array.from({ length: 3 }, () => {
      const start = process.cpuUsage();
      work();
      const used = process.cpuUsage(start);
      return used.user + used.system;
    }),
  );
}

test('a 64 KiB compression-chain message is refused within 5 ms of CPU', () => {
  const attack = compressionChain(5400);
  assert.ok(attack.length > 64_000);
  for (const parse of [parseDnsMessage, parseDnsQuery]) {
    const micros = cpuMicros(() => assert.throws(() => parse(attack), DnsFormatError));
    assert.ok(micros < 5000, `${parse.name} took ${micros} µs of CPU`);
  }
  // Within the record cap: 512 records whose names each take one hop more than the one before.
  const capped = compressionChain(MAX_RECORDS);
  const micros = cpuMicros(() => assert.throws(() => parseDnsMessage(capped), DnsFormatError));
  assert.ok(micros < 5000, `capped chain took ${micros} µs of CPU`);
});

test('the most expensive message within the caps (512 records, each name 127 labels through pointers) parses within 5 ms of CPU', () => {
  // 127 one-byte labels (254 bytes) once, then 512 records whose owner names point at it.
  const longName = Array.from({ length: 127 }, (_, i) => String.fromCharCode(97 + (i % 26)));
  const m: DnsMessage = {
    id: 1,
    flags: 0x8180,
    questions: [{ name: longName, type: DnsType.A, class: 1 }],
    answers: Array.from({ length: MAX_RECORDS }, () => ({ name: longName, type: DnsType.A, class: 1, ttl: 1, data: Buffer.from([1, 2, 3, 4]) })),
    authorities: [],
    additionals: [],
  };
  const wire = buildDnsMessage(m);
  const micros = cpuMicros(() => parseDnsMessage(wire));
  assert.ok(micros < 5000, `took ${micros} µs of CPU`);
});

// Bytes biased towards what makes parsing expensive: pointer bytes (0xc0-0xff), small label lengths and zeros.
const hostileByte = fc.oneof(fc.integer({ min: 0xc0, max: 0xff }), fc.integer({ min: 0, max: 63 }), fc.constant(0), fc.integer({ min: 0, max: 255 }));
const hostileMessage = fc
  .tuple(fc.array(hostileByte, { minLength: 0, maxLength: 4000 }), fc.array(fc.nat({ max: 0xffff }), { minLength: 4, maxLength: 4 }))
  .map(([body, counts]) => {
    const wire = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...body]);
    counts.forEach((count, i) => wire.length >= 12 && wire.writeUInt16BE(count % 600, 4 + 2 * i));
    return wire;
  });

test('property: hostile bytes (pointer-heavy, any counts) parse or throw DnsFormatError, as message and as query', () => {
  fc.assert(
    fc.property(hostileMessage, (wire) => {
      for (const parse of [parseDnsMessage, parseDnsQuery]) {
        try {
          parse(wire);
        } catch (error) {
          assert.ok(error instanceof DnsFormatError, String(error));
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('property: a message cut to any size from 512 fits, keeps its records in order, and sets TC exactly when answers were dropped', () => {
  fc.assert(
    fc.property(message, fc.integer({ min: 512, max: 4096 }), (m, limit) => {
      const single = { ...m, questions: m.questions.slice(0, 1) };
      const wire = buildDnsMessageWithin(single, limit);
      assert.ok(wire.length <= limit);
      const back = parseDnsMessage(wire);
      assert.deepEqual(back.answers, plain(single).answers.slice(0, back.answers.length));
      assert.deepEqual(back.authorities, plain(single).authorities.slice(0, back.authorities.length));
      const dropped = back.answers.length < single.answers.length || back.authorities.length < single.authorities.length;
      assert.equal((back.flags & DnsFlag.TC) !== 0, dropped || (single.flags & DnsFlag.TC) !== 0);
    }),
  );
});
