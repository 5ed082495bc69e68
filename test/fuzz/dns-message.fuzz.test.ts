// Fuzzes the DNS message parser on what clients and upstream servers send: only DnsFormatError may be thrown and no
// message is slow to parse, including the compression-pointer chains the issue names as a CPU attack.

import { test } from 'node:test';
import { fuzz } from './fuzz-harness.js';
import { buildDnsMessage, DnsFormatError, DnsType, nameBytes, parseDnsMessage, textToName, type DnsRecord } from '../../src/dns/dns-message.js';

const IN = 1;

function record(name: string, type: number, data: Buffer): DnsRecord {
  return { name: textToName(name), type, class: IN, ttl: 30, data };
}

function messages(): Buffer[] {
  const question = { name: textToName('echo.default.svc.cluster.local'), type: DnsType.A, class: IN };
  const srvData = Buffer.concat([Buffer.from('000a0005 1f90'.replace(' ', ''), 'hex'), nameBytes(textToName('echo.default.svc.cluster.local'))]);
  const soaData = Buffer.concat([nameBytes(textToName('ns.dns.cluster.local')), nameBytes(textToName('hostmaster.cluster.local')), Buffer.alloc(20, 1)]);
  const opt: DnsRecord = { name: [], type: DnsType.OPT, class: 1232, ttl: 0, data: Buffer.alloc(0) };
  const answers = [
    record('echo.default.svc.cluster.local', DnsType.A, Buffer.from([10, 96, 0, 10])),
    record('echo.default.svc.cluster.local', DnsType.AAAA, Buffer.alloc(16, 0xfd)),
    record('www.echo.default.svc.cluster.local', DnsType.CNAME, nameBytes(textToName('echo.default.svc.cluster.local'))),
    record('_http._tcp.echo.default.svc.cluster.local', DnsType.SRV, srvData),
    record('cluster.local', DnsType.MX, Buffer.concat([Buffer.from([0, 10]), nameBytes(textToName('mail.cluster.local'))])),
    record('cluster.local', DnsType.TXT, Buffer.from('\x0bhello world')),
  ];
  const base = { id: 0x1234, flags: 0x8180, questions: [question], answers: [], authorities: [], additionals: [] };
  return [
    buildDnsMessage({ ...base, flags: 0x0100, additionals: [opt] }),
    buildDnsMessage({ ...base, answers }),
    buildDnsMessage({ ...base, flags: 0x8183, authorities: [record('cluster.local', DnsType.SOA, soaData)], additionals: [opt] }),
  ];
}

/**
 * The attack shape from the issue: a TXT record whose RDATA holds a chain of compression pointers, each one step
 * back (as the parser requires), then as many records as fit whose owner names all point at the chain's end, so
 * each walks the whole chain.
 */
function compressionChain(): Buffer {
  const hops = 8_000; // the chain must end below offset 0x4000, the farthest a pointer reaches
  const chainStart = 23;
  const recordsStart = chainStart + 1 + 2 * hops;
  const records = Math.floor((0xffff - recordsStart) / 12);
  const message = Buffer.alloc(recordsStart + 12 * records);
  message.writeUInt16BE(0x1234, 0);
  message.writeUInt16BE(1 + records, 6);
  // The carrier: owner name root (byte 12), type TXT, class IN, TTL 0, RDATA = the chain.
  message.writeUInt16BE(DnsType.TXT, 13);
  message.writeUInt16BE(IN, 15);
  message.writeUInt16BE(1 + 2 * hops, 21);
  // RDATA: a root name, then pointer i at chainStart + 1 + 2i points to the name before it.
  for (let i = 0; i < hops; i++) message.writeUInt16BE(0xc000 | (i === 0 ? chainStart : chainStart + 1 + 2 * (i - 1)), chainStart + 1 + 2 * i);
  for (let i = 0; i < records; i++) {
    const at = recordsStart + 12 * i;
    message.writeUInt16BE(0xc000 | (chainStart + 1 + 2 * (hops - 1)), at);
    message.writeUInt16BE(DnsType.A, at + 2);
    message.writeUInt16BE(IN, at + 4);
  }
  return message;
}

test('fuzz: DNS message', (t) => {
  fuzz(
    {
      name: 'dns-message',
      corpus: [...messages(), compressionChain()],
      dictionary: ['c00c', 'c000', 'ffff', '00', '3f', '40', '80', '0001', '0029', '0006', '00000000'].map((h) => Buffer.from(h, 'hex')),
      maxLength: 0xffff,
      run: (input) => parseDnsMessage(input),
      isParserError: (error) => error instanceof DnsFormatError,
    },
    t,
  );
});
