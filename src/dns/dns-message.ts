// DNS wire format (RFC 1035 §4) for what the manager and the root daemon need: read a message, change names, write it back.
// Names are arrays of labels (latin1 strings, so any byte survives); names inside RDATA of the RFC 1035 types
// and SRV are expanded on parse, because compression pointers would point elsewhere once names change.

export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  DNAME: 39,
  OPT: 41,
} as const;
export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;
export const DnsFlag = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080 } as const;

export type DnsName = string[];

export interface DnsQuestion {
  name: DnsName;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: DnsName;
  type: number;
  class: number;
  ttl: number;
  /** RDATA with every name written out in full. */
  data: Buffer;
}

export interface DnsMessage {
  id: number;
  /** QR, opcode, AA, TC, RD, RA, Z and rcode as the 16-bit header word. */
  flags: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export class DnsFormatError extends Error {
  readonly code = 'BAD_DNS_MESSAGE';
  constructor(message: string) {
    super(`Malformed DNS message: ${message}.`);
    this.name = 'DnsFormatError';
  }
}

const HEADER_LENGTH = 12;
const MAX_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;

export function rcodeOf(flags: number): number {
  return flags & 0x000f;
}

/** A name as text (`echo.default`); the root is the empty string. */
export function nameToText(name: DnsName): string {
  return name.join('.');
}

/** Labels of a dotted name; leading, trailing and doubled dots are ignored. */
export function textToName(text: string): DnsName {
  return text.split('.').filter((label) => label !== '');
}

function lowerAscii(label: string): string {
  return label.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) | 0x20));
}

/** DNS names compare ASCII case-insensitively (RFC 4343). */
export function nameEquals(a: DnsName, b: DnsName): boolean {
  return a.length === b.length && a.every((label, i) => lowerAscii(label) === lowerAscii(b[i]!));
}

/** True when `name` is `suffix` or below it. */
export function nameEndsWith(name: DnsName, suffix: DnsName): boolean {
  if (suffix.length > name.length) return false;
  return nameEquals(name.slice(name.length - suffix.length), suffix);
}

function wireLength(name: DnsName): number {
  return name.reduce((sum, label) => sum + 1 + Buffer.byteLength(label, 'latin1'), 1);
}

function need(buffer: Buffer, offset: number, length: number, what: string): void {
  if (offset + length > buffer.length) throw new DnsFormatError(`${what} runs past the end`);
}

/** Reads a possibly compressed name at `offset`: the labels and the offset after the name in place. */
function readName(buffer: Buffer, offset: number): [DnsName, number] {
  const labels: DnsName = [];
  let at = offset;
  let end = -1;
  let length = 1;
  // Pointers must go strictly backwards, which also rules out loops.
  let limit = offset;
  for (;;) {
    need(buffer, at, 1, 'a name');
    const byte = buffer[at]!;
    if (byte === 0) {
      if (end < 0) end = at + 1;
      return [labels, end];
    }
    if ((byte & 0xc0) === 0xc0) {
      need(buffer, at, 2, 'a name pointer');
      const target = ((byte & 0x3f) << 8) | buffer[at + 1]!;
      if (target >= limit) throw new DnsFormatError('a name pointer does not point backwards');
      if (end < 0) end = at + 2;
      limit = target;
      at = target;
      continue;
    }
    if ((byte & 0xc0) !== 0) throw new DnsFormatError('a label uses a reserved length type');
    need(buffer, at + 1, byte, 'a label');
    length += byte + 1;
    if (length > MAX_NAME_LENGTH) throw new DnsFormatError('a name is longer than 255 bytes');
    labels.push(buffer.toString('latin1', at + 1, at + 1 + byte));
    at += 1 + byte;
  }
}

function writeNameUncompressed(name: DnsName, out: Buffer, offset: number): number {
  let at = offset;
  for (const label of name) {
    out[at] = label.length;
    out.write(label, at + 1, 'latin1');
    at += 1 + label.length;
  }
  out[at] = 0;
  return at + 1;
}

/** A name in wire form, uncompressed: the RDATA of CNAME and PTR, and the names inside SRV and SOA. */
export function nameBytes(name: DnsName): Buffer {
  const out = Buffer.alloc(wireLength(name));
  writeNameUncompressed(name, out, 0);
  return out;
}

/** RDATA with its embedded names expanded: [fixed bytes before, names..., fixed bytes after] per type. */
function expandRdata(buffer: Buffer, type: number, offset: number, length: number): Buffer {
  const end = offset + length;
  const raw = (): Buffer => Buffer.from(buffer.subarray(offset, end));
  let layout: { before: number; names: number; after: number } | undefined;
  switch (type) {
    case DnsType.NS:
    case DnsType.CNAME:
    case DnsType.PTR:
    case DnsType.DNAME:
      layout = { before: 0, names: 1, after: 0 };
      break;
    case DnsType.MX:
      layout = { before: 2, names: 1, after: 0 };
      break;
    case DnsType.SRV:
      layout = { before: 6, names: 1, after: 0 };
      break;
    case DnsType.SOA:
      layout = { before: 0, names: 2, after: 20 };
      break;
  }
  if (layout === undefined) return raw();
  const parts: Buffer[] = [];
  if (layout.before > length) throw new DnsFormatError('RDATA is shorter than its type requires');
  parts.push(buffer.subarray(offset, offset + layout.before));
  let at = offset + layout.before;
  for (let i = 0; i < layout.names; i++) {
    const [name, next] = readName(buffer, at);
    if (next > end) throw new DnsFormatError('a name in RDATA runs past the record');
    parts.push(nameBytes(name));
    at = next;
  }
  if (end - at !== layout.after) throw new DnsFormatError('RDATA has the wrong length for its type');
  parts.push(buffer.subarray(at, end));
  return Buffer.concat(parts);
}

function readRecords(buffer: Buffer, offset: number, count: number, into: DnsRecord[]): number {
  let at = offset;
  for (let i = 0; i < count; i++) {
    const [name, next] = readName(buffer, at);
    need(buffer, next, 10, 'a record header');
    const type = buffer.readUInt16BE(next);
    const klass = buffer.readUInt16BE(next + 2);
    const ttl = buffer.readUInt32BE(next + 4);
    const length = buffer.readUInt16BE(next + 8);
    need(buffer, next + 10, length, 'RDATA');
    into.push({ name, type, class: klass, ttl, data: expandRdata(buffer, type, next + 10, length) });
    at = next + 10 + length;
  }
  return at;
}

/** Parses a whole message; throws DnsFormatError on anything malformed (never another error). */
export function parseDnsMessage(buffer: Buffer): DnsMessage {
  need(buffer, 0, HEADER_LENGTH, 'the header');
  const message: DnsMessage = {
    id: buffer.readUInt16BE(0),
    flags: buffer.readUInt16BE(2),
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  let at = HEADER_LENGTH;
  for (let i = buffer.readUInt16BE(4); i > 0; i--) {
    const [name, next] = readName(buffer, at);
    need(buffer, next, 4, 'a question');
    message.questions.push({ name, type: buffer.readUInt16BE(next), class: buffer.readUInt16BE(next + 2) });
    at = next + 4;
  }
  at = readRecords(buffer, at, buffer.readUInt16BE(6), message.answers);
  at = readRecords(buffer, at, buffer.readUInt16BE(8), message.authorities);
  readRecords(buffer, at, buffer.readUInt16BE(10), message.additionals);
  return message;
}

/**
 * Writes names with compression (RFC 1035 §4.1.4) against names written earlier in the same message. Suffixes
 * match byte for byte, so every name keeps the case it was given.
 */
class NameWriter {
  private readonly offsets = new Map<string, number>();

  /** Bytes `name` takes at most. */
  static maxLength(name: DnsName): number {
    return wireLength(name);
  }

  write(name: DnsName, out: Buffer, offset: number): number {
    let at = offset;
    for (let i = 0; i < name.length; i++) {
      // Length-prefixed labels: unambiguous even for labels that contain dots or NULs.
      const key = name.slice(i).map((l) => String.fromCharCode(l.length) + l).join('');
      const known = this.offsets.get(key);
      if (known !== undefined) {
        out.writeUInt16BE(0xc000 | known, at);
        return at + 2;
      }
      if (at < 0x4000) this.offsets.set(key, at);
      const label = name[i]!;
      if (label.length > MAX_LABEL_LENGTH) throw new DnsFormatError('a label is longer than 63 bytes');
      out[at] = label.length;
      out.write(label, at + 1, 'latin1');
      at += 1 + label.length;
    }
    out[at] = 0;
    return at + 1;
  }
}

/** Writes a message; question and owner names are compressed, RDATA is written as given. */
export function buildDnsMessage(message: DnsMessage): Buffer {
  const records = [...message.answers, ...message.authorities, ...message.additionals];
  let size = HEADER_LENGTH;
  for (const q of message.questions) size += NameWriter.maxLength(q.name) + 4;
  for (const r of records) size += NameWriter.maxLength(r.name) + 10 + r.data.length;
  const out = Buffer.alloc(size);
  out.writeUInt16BE(message.id, 0);
  out.writeUInt16BE(message.flags, 2);
  out.writeUInt16BE(message.questions.length, 4);
  out.writeUInt16BE(message.answers.length, 6);
  out.writeUInt16BE(message.authorities.length, 8);
  out.writeUInt16BE(message.additionals.length, 10);
  const names = new NameWriter();
  let at = HEADER_LENGTH;
  for (const q of message.questions) {
    at = names.write(q.name, out, at);
    out.writeUInt16BE(q.type, at);
    out.writeUInt16BE(q.class, at + 2);
    at += 4;
  }
  for (const r of records) {
    at = names.write(r.name, out, at);
    out.writeUInt16BE(r.type, at);
    out.writeUInt16BE(r.class, at + 2);
    out.writeUInt32BE(r.ttl, at + 4);
    out.writeUInt16BE(r.data.length, at + 8);
    r.data.copy(out, at + 10);
    at += 10 + r.data.length;
  }
  return out.subarray(0, at);
}

/** A reply to `query` with no records and the given rcode (SERVFAIL when the cluster DNS is unreachable). */
export function errorReply(query: DnsMessage, rcode: number): Buffer {
  return buildDnsMessage({
    id: query.id,
    flags: DnsFlag.QR | (query.flags & (0x7800 | DnsFlag.RD)) | DnsFlag.RA | rcode,
    questions: query.questions,
    answers: [],
    authorities: [],
    additionals: [],
  });
}
