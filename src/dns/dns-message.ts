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
/** Pointers followed while reading one name; real messages need 1, rarely 2 (a name inside RDATA). */
export const MAX_POINTER_HOPS = 32;
/** RFC 9619: a message carries at most one question (QDCOUNT > 1 was never defined). */
const MAX_QUESTIONS = 1;
/**
 * Records in one message, all sections together. A record with a compressed owner name takes 12 bytes at least,
 * so 64 KiB could hold ~5,400 of them, each expanding to a 255-byte name: ~95x the parsing work of its size.
 * Real answers carry tens of records (the largest RRsets seen in practice, load balancer A sets and SPF/TXT
 * collections, stay far below 512); 512 keeps any message's parse to a bounded, small cost.
 */
export const MAX_RECORDS = 512;
/** Bytes a question and a record take at the least: a root name (1) plus the fixed fields. */
const MIN_QUESTION_LENGTH = 1 + 4;
const MIN_RECORD_LENGTH = 1 + 10;
/** OPT (RFC 6891) and TSIG (RFC 8945): what a client may add to a query. */
const MAX_QUERY_ADDITIONALS = 2;

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

/** Lower-cases A-Z only: DNS case folding (RFC 4343); other bytes, latin1 letters included, stay as they are. */
export function lowerAscii(label: string): string {
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

/** A name read before, seen from the offset of one of its labels: the labels from there on, their wire length and hops. */
interface KnownSuffix {
  labels: DnsName;
  from: number;
  length: number;
  hops: number;
  /** The suffix in wire form, made the first time a name in RDATA is exactly this suffix. */
  wire?: Buffer;
}

/**
 * Reads the names of one message. Every label read is remembered by its offset, so a pointer to a name read
 * before costs one lookup and a copy instead of a walk: a message of hundreds of records whose names all point
 * at one long name parses in linear time.
 */
class NameReader {
  private readonly known = new Map<number, KnownSuffix>();

  constructor(private readonly buffer: Buffer) {}

  /**
   * The name at `offset`, the offset after it in place, and the suffix it wholly is when it is only a pointer to
   * a name read before (whose wire form can then be shared).
   */
  read(offset: number): { name: DnsName; next: number; same: KnownSuffix | null } {
    const buffer = this.buffer;
    let labels: DnsName = [];
    const starts: number[] = [];
    const lengthBefore: number[] = [];
    const hopsBefore: number[] = [];
    let at = offset;
    let end = -1;
    let length = 1;
    let hops = 0;
    let tail: KnownSuffix | undefined;
    // Pointers must go strictly backwards, which also rules out loops; the hop cap bounds the work per name.
    let limit = offset;
    for (;;) {
      need(buffer, at, 1, 'a name');
      const byte = buffer[at]!;
      if (byte === 0) {
        if (end < 0) end = at + 1;
        break;
      }
      if ((byte & 0xc0) === 0xc0) {
        need(buffer, at, 2, 'a name pointer');
        const target = ((byte & 0x3f) << 8) | buffer[at + 1]!;
        if (target >= limit) throw new DnsFormatError('a name pointer does not point backwards');
        if (++hops > MAX_POINTER_HOPS) throw new DnsFormatError(`a name follows more than ${MAX_POINTER_HOPS} compression pointers`);
        if (end < 0) end = at + 2;
        limit = target;
        at = target;
        tail = this.known.get(target);
        if (tail === undefined) continue;
        hops += tail.hops;
        if (hops > MAX_POINTER_HOPS) throw new DnsFormatError(`a name follows more than ${MAX_POINTER_HOPS} compression pointers`);
        length += tail.length - 1;
        if (length > MAX_NAME_LENGTH) throw new DnsFormatError('a name is longer than 255 bytes');
        const rest = tail.labels.slice(tail.from);
        labels = labels.length === 0 ? rest : labels.concat(rest);
        break;
      }
      if ((byte & 0xc0) !== 0) throw new DnsFormatError('a label uses a reserved length type');
      need(buffer, at + 1, byte, 'a label');
      starts.push(at);
      lengthBefore.push(length);
      hopsBefore.push(hops);
      length += byte + 1;
      if (length > MAX_NAME_LENGTH) throw new DnsFormatError('a name is longer than 255 bytes');
      labels.push(buffer.toString('latin1', at + 1, at + 1 + byte));
      at += 1 + byte;
    }
    for (let i = 0; i < starts.length; i++) {
      this.known.set(starts[i]!, { labels, from: i, length: length - lengthBefore[i]! + 1, hops: hops - hopsBefore[i]! });
    }
    return { name: labels, next: end, same: starts.length === 0 && tail !== undefined ? tail : null };
  }

  /** The name at `offset` in wire form, uncompressed, and the offset after it in place. */
  readWire(offset: number): [Buffer, number] {
    const { name, next, same } = this.read(offset);
    if (same === null) return [nameBytes(name), next];
    same.wire ??= nameBytes(name);
    return [same.wire, next];
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
function expandRdata(names: NameReader, buffer: Buffer, type: number, offset: number, length: number): Buffer {
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
    const [wire, next] = names.readWire(at);
    if (next > end) throw new DnsFormatError('a name in RDATA runs past the record');
    parts.push(wire);
    at = next;
  }
  if (end - at !== layout.after) throw new DnsFormatError('RDATA has the wrong length for its type');
  parts.push(buffer.subarray(at, end));
  return Buffer.concat(parts);
}

function readRecords(names: NameReader, buffer: Buffer, offset: number, count: number, into: DnsRecord[]): number {
  let at = offset;
  for (let i = 0; i < count; i++) {
    const { name, next } = names.read(at);
    need(buffer, next, 10, 'a record header');
    const type = buffer.readUInt16BE(next);
    const klass = buffer.readUInt16BE(next + 2);
    const ttl = buffer.readUInt32BE(next + 4);
    const length = buffer.readUInt16BE(next + 8);
    need(buffer, next + 10, length, 'RDATA');
    into.push({ name, type, class: klass, ttl, data: expandRdata(names, buffer, type, next + 10, length) });
    at = next + 10 + length;
  }
  return at;
}

/** The four section counts of the header, refused when they exceed the caps or cannot fit in the message. */
function sectionCounts(buffer: Buffer): [questions: number, answers: number, authorities: number, additionals: number] {
  need(buffer, 0, HEADER_LENGTH, 'the header');
  const counts: [number, number, number, number] = [buffer.readUInt16BE(4), buffer.readUInt16BE(6), buffer.readUInt16BE(8), buffer.readUInt16BE(10)];
  const [questions, answers, authorities, additionals] = counts;
  if (questions > MAX_QUESTIONS) throw new DnsFormatError(`it has ${questions} questions; at most ${MAX_QUESTIONS} is allowed`);
  const records = answers + authorities + additionals;
  if (records > MAX_RECORDS) throw new DnsFormatError(`it has ${records} records; at most ${MAX_RECORDS} are accepted`);
  if (HEADER_LENGTH + questions * MIN_QUESTION_LENGTH + records * MIN_RECORD_LENGTH > buffer.length) {
    throw new DnsFormatError('its header counts more questions and records than its length can hold');
  }
  return counts;
}

/** Parses a whole message; throws DnsFormatError on anything malformed (never another error). */
export function parseDnsMessage(buffer: Buffer): DnsMessage {
  const [questions, answers, authorities, additionals] = sectionCounts(buffer);
  const message: DnsMessage = {
    id: buffer.readUInt16BE(0),
    flags: buffer.readUInt16BE(2),
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  const names = new NameReader(buffer);
  let at = HEADER_LENGTH;
  for (let i = questions; i > 0; i--) {
    const { name, next } = names.read(at);
    need(buffer, next, 4, 'a question');
    message.questions.push({ name, type: buffer.readUInt16BE(next), class: buffer.readUInt16BE(next + 2) });
    at = next + 4;
  }
  at = readRecords(names, buffer, at, answers, message.answers);
  at = readRecords(names, buffer, at, authorities, message.authorities);
  readRecords(names, buffer, at, additionals, message.additionals);
  return message;
}

/**
 * Parses a message sent to us as a query: exactly one question, no answer or authority records, at most
 * MAX_QUERY_ADDITIONALS additional ones (EDNS OPT, TSIG); throws DnsFormatError otherwise. The counts are
 * checked before any name is read, so an oversized query costs nothing.
 */
export function parseDnsQuery(buffer: Buffer): DnsMessage {
  const [questions, answers, authorities, additionals] = sectionCounts(buffer);
  if (questions !== 1) throw new DnsFormatError(`a query must ask exactly one question, not ${questions}`);
  if (answers + authorities > 0) throw new DnsFormatError('a query carries no answer or authority records');
  if (additionals > MAX_QUERY_ADDITIONALS) throw new DnsFormatError(`a query carries at most ${MAX_QUERY_ADDITIONALS} additional records`);
  return parseDnsMessage(buffer);
}

/** The UDP payload size a query's EDNS OPT record offers (its CLASS field), or null without EDNS. */
export function ednsPayloadSize(query: DnsMessage): number | null {
  const opt = query.additionals.find((r) => r.type === DnsType.OPT);
  return opt === undefined ? null : opt.class;
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

/**
 * The message in at most `maxBytes` (RFC 1035 §4.2.1, RFC 2181 §9): records are kept in order while they fit and
 * TC is set when an answer or authority record had to go; additional records are dropped without TC, except
 * EDNS OPT, which is kept (RFC 6891 §7). Sizes are counted uncompressed, so the result always fits.
 */
export function buildDnsMessageWithin(message: DnsMessage, maxBytes: number): Buffer {
  let room = maxBytes - HEADER_LENGTH;
  for (const q of message.questions) room -= NameWriter.maxLength(q.name) + 4;
  const opt = message.additionals.filter((r) => r.type === DnsType.OPT);
  for (const r of opt) room -= recordMaxLength(r);
  let truncated = false;
  const keep = (records: DnsRecord[]): DnsRecord[] => {
    const kept: DnsRecord[] = [];
    for (const r of records) {
      const length = recordMaxLength(r);
      if (truncated || length > room) {
        truncated = true;
        break;
      }
      room -= length;
      kept.push(r);
    }
    return kept;
  };
  const answers = keep(message.answers);
  const authorities = keep(message.authorities);
  const cutShort = truncated;
  const additionals = [...keep(message.additionals.filter((r) => r.type !== DnsType.OPT)), ...opt];
  return buildDnsMessage({ ...message, flags: cutShort ? message.flags | DnsFlag.TC : message.flags, answers, authorities, additionals });
}

function recordMaxLength(record: DnsRecord): number {
  return NameWriter.maxLength(record.name) + 10 + record.data.length;
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

/** A reply of a header only, for a query that cannot be read: its ID (if it has one) and the rcode. */
export function headerOnlyReply(query: Buffer, rcode: number): Buffer {
  const reply = Buffer.alloc(12);
  if (query.length >= 2) query.copy(reply, 0, 0, 2);
  reply.writeUInt16BE(DnsFlag.QR | rcode, 2);
  return reply;
}
