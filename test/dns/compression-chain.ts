// The compression-pointer attack of issue 8, shared by the parser's unit tests and the end-to-end test.
import { DnsType } from '../../src/dns/dns-message.js';

/**
 * A query for `a` TXT followed by `records` records whose owner names each point at the previous record's owner:
 * record k's name takes k + 1 hops. With ~5,400 records this fills 64 KiB and costs O(n^2) hops to read without
 * a hop cap (~95 ms of CPU before issue 8).
 */
export function compressionChain(records: number, id = 0x4242): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records, 6);
  const parts = [header, Buffer.from([1, 0x61, 0, 0, DnsType.TXT, 0, 1])];
  let previous = 12;
  for (let i = 0, at = 19; i < records; i++, at += 12) {
    const record = Buffer.alloc(12);
    record.writeUInt16BE(0xc000 | previous, 0);
    record.writeUInt16BE(DnsType.TXT, 2);
    record.writeUInt16BE(1, 4);
    parts.push(record);
    previous = at;
  }
  return Buffer.concat(parts);
}
