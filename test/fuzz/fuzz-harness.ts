// A small mutation fuzzer for the parsers that read bytes from outside. No coverage feedback: a corpus of valid
// inputs built with the project's emitters, cheap mutations of them and pure random inputs, a fixed number of
// times. Deterministic from a seed, so a failure can be replayed from the seed or from the input's hex.
//
// Environment: FUZZ_INPUTS (inputs per target, default 1,000,000), FUZZ_SEED (default fixed, so CI results do not
// depend on luck; `npm run fuzz` passes a random one), FUZZ_MAX_MS (the per-input bound, default 50),
// FUZZ_INPUT_HEX (run only this input, to replay a failure).

import assert, { AssertionError } from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { TestContext } from 'node:test';

export interface FuzzTarget {
  name: string;
  /** Valid inputs (and known attack shapes) to mutate. */
  corpus: Uint8Array[];
  /** Tokens worth inserting (keywords, separators, option kinds). */
  dictionary?: Uint8Array[];
  /** The largest input worth handing the parser: what the protocol allows in one message. */
  maxLength: number;
  /**
   * Calls the parser on `input` (and checks what it returned); a fresh parser state per call, since an input
   * that exceeds the time bound is run again to tell a slow input from a busy machine.
   */
  run(input: Buffer): void;
  /** Whether `error` is how this parser reports bad input; anything else thrown fails the fuzz test. */
  isParserError(error: unknown): boolean;
}

/**
 * 50 ms: a parse takes microseconds and a linear walk over the largest message (64 KiB) a few milliseconds, so
 * this leaves an order of magnitude for a slow CI CPU, while the quadratic walks found over 64 KiB took 0.15 s
 * (DNS pointer chains) and 0.4 s (capsules in 1-byte chunks). An input over the bound in wall time is run three more times and fails only if even its least CPU
 * time is over, so a loaded 2-core machine or a GC pause does not fail the test.
 */
const DEFAULT_MAX_MS = 50;
const DEFAULT_INPUTS = 1_000_000;
/** Fixed so CI runs the same inputs every time; new inputs come from `npm run fuzz`, which picks a seed. */
const DEFAULT_SEED = 0x6b756265;
const RERUNS = 3;

function envInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name}=${text} is not a non-negative integer.`);
  return value;
}

/** sfc32 (PractRand-tested, 32-bit state words): fast and good enough to pick mutations. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number) {
    this.a = seed >>> 0;
    this.b = Math.floor(seed / 0x100000000) >>> 0;
    this.c = 0x9e3779b9;
    for (let i = 0; i < 16; i++) this.next();
  }

  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 0x100000000) * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

const INTERESTING_8 = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xfe, 0xff];
const INTERESTING_16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** A plain Uint8Array view: its subarray and copy methods are native, without Buffer's per-call overhead. */
function bytesOf(input: Uint8Array): Uint8Array {
  return new Uint8Array(input.buffer, input.byteOffset, input.length);
}

/** Builds inputs into one reusable buffer; each input is a view of it, valid until the next one. */
class Mutator {
  private readonly scratch: Buffer;
  private readonly bytes: Uint8Array;
  private readonly corpus: Uint8Array[];
  private readonly dictionary: Uint8Array[];
  private length = 0;

  constructor(
    private readonly random: Random,
    private readonly maxLength: number,
    corpus: Uint8Array[],
    dictionary: Uint8Array[],
  ) {
    this.scratch = Buffer.alloc(maxLength);
    this.bytes = bytesOf(this.scratch);
    this.corpus = corpus.map((input) => bytesOf(input).subarray(0, maxLength));
    this.dictionary = dictionary.map(bytesOf);
  }

  next(): Buffer {
    const r = this.random;
    if (r.below(16) === 0 || this.corpus.length === 0) {
      this.length = r.below(r.below(4) === 0 ? Math.min(this.maxLength, 2048) : 96);
      for (let i = 0; i < this.length; i++) this.bytes[i] = r.next() & 0xff;
      return this.scratch.subarray(0, this.length);
    }
    const seed = r.pick(this.corpus);
    this.bytes.set(seed, 0);
    this.length = seed.length;
    for (let n = 1 + r.below(4); n > 0; n--) this.mutate();
    return this.scratch.subarray(0, this.length);
  }

  /** Replaces [at, at + removed) with `inserted` (not a view of the scratch), clipped to the capacity. */
  private replace(at: number, removed: number, inserted: Uint8Array): void {
    const s = this.bytes;
    const count = Math.min(inserted.length, s.length - at);
    const kept = Math.min(this.length - at - removed, s.length - at - count);
    s.copyWithin(at + count, at + removed, at + removed + kept);
    s.set(inserted.subarray(0, count), at);
    this.length = at + count + kept;
  }

  /** A value a length field might be checked against: the length from here or from the start, nudged. */
  private lengthValue(at: number): number {
    const r = this.random;
    const base = r.below(2) === 0 ? this.length : this.length - at;
    const scaled = [base, base >> 2, base >> 3, base - 8, base - 20, base - 40][r.below(6)]!;
    return scaled + r.below(5) - 2;
  }

  private mutate(): void {
    const r = this.random;
    const s = this.bytes;
    const len = this.length;
    const at = len === 0 ? 0 : r.below(len);
    switch (r.below(14)) {
      case 0:
        if (len > 0) s[at] = s[at]! ^ (1 << r.below(8));
        break;
      case 1:
        if (len > 0) s[at] = r.pick(INTERESTING_8);
        break;
      case 2:
        if (len > 0) s[at] = r.next() & 0xff;
        break;
      case 3:
        if (at + 2 <= len) this.scratch.writeUInt16BE(r.pick(INTERESTING_16), at);
        break;
      case 4:
        if (at + 4 <= len) this.scratch.writeUInt32BE(r.pick(INTERESTING_32), at);
        break;
      case 5: {
        // A length field edited to agree or nearly agree with the bytes present.
        const value = this.lengthValue(at) & 0xffff;
        if (at + 2 <= len && r.below(2) === 0) this.scratch.writeUInt16BE(value, at);
        else if (len > 0) s[at] = value & 0xff;
        break;
      }
      case 6:
        this.length = r.below(len + 1);
        break;
      case 7: {
        const end = Math.min(s.length, len + 1 + r.below(64));
        for (let i = len; i < end; i++) s[i] = r.next() & 0xff;
        this.length = end;
        break;
      }
      case 8: {
        // Splice: a piece of another corpus input over or into this one.
        const other = r.pick(this.corpus);
        const from = r.below(other.length + 1);
        const piece = other.subarray(from, from + r.below(other.length - from + 1));
        this.replace(at, r.below(2) === 0 ? Math.min(piece.length, len - at) : 0, piece);
        break;
      }
      case 9:
        if (len > 0) this.replace(at, 1 + r.below(Math.min(16, len - at)), new Uint8Array(0));
        break;
      case 10: {
        // Duplicate a piece in place: repeated headers, options, records.
        const size = 1 + r.below(Math.min(64, Math.max(1, len - at)));
        this.replace(r.below(len + 1), 0, s.slice(at, Math.min(len, at + size)));
        break;
      }
      case 11: {
        if (this.dictionary.length > 0) this.replace(at, r.below(2) === 0 ? 0 : Math.min(len - at, 1), r.pick(this.dictionary));
        break;
      }
      case 12:
        // Rarely, grow to the protocol's limit by repeating a piece: where quadratic walks show.
        if (r.below(64) === 0 && len > 0) this.repeatToLimit(at);
        break;
      default:
        if (len > 0) s[at] = s[at]! + r.below(7) - 3;
        break;
    }
  }

  /** Appends copies of a piece until the length nears the limit, doubling the copied block each step. */
  private repeatToLimit(at: number): void {
    const r = this.random;
    const size = 1 + r.below(Math.min(32, this.length - at));
    const limit = this.maxLength - r.below(this.maxLength >> 2);
    const start = this.length;
    if (start + size > limit) return;
    this.bytes.copyWithin(start, at, at + size);
    let filled = size;
    while (start + filled * 2 <= limit) {
      this.bytes.copyWithin(start + filled, start, start + filled);
      filled *= 2;
    }
    this.length = start + filled;
  }
}

function hex(input: Uint8Array): string {
  return Buffer.from(input.buffer, input.byteOffset, input.length).toString('hex');
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}\n${error.stack ?? ''}`;
  return String(error);
}

/** What the last timeOne() call threw, if anything (module state, so the hot loop allocates no result object). */
let lastError: unknown;

/** Runs the target on `input`; returns the wall time in ms and leaves what it threw in lastError. */
function timeOne(target: FuzzTarget, input: Buffer): number {
  lastError = undefined;
  const start = performance.now();
  try {
    target.run(input);
  } catch (caught) {
    lastError = caught;
  }
  return performance.now() - start;
}

/**
 * The least CPU time of a few more runs. Wall time picks the candidates cheaply; CPU time confirms them, since a
 * loaded machine stretches wall time but not the CPU an input needs, and the fastest run sheds GC pauses.
 */
function rerunCpuMs(target: FuzzTarget, input: Buffer): number {
  let best = Infinity;
  for (let i = 0; i < RERUNS; i++) {
    const start = process.cpuUsage();
    timeOne(target, input);
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

/**
 * Runs `target` on FUZZ_INPUTS inputs. Fails on the first input that throws anything but the parser's error, or
 * whose parse stays slower than FUZZ_MAX_MS; the message holds the seed and the input in hex.
 */
export function fuzz(target: FuzzTarget, t: TestContext): void {
  const seed = envInteger('FUZZ_SEED', DEFAULT_SEED);
  const replay = process.env.FUZZ_INPUT_HEX;
  const inputs = replay ? 1 : envInteger('FUZZ_INPUTS', DEFAULT_INPUTS);
  const maxMs = envInteger('FUZZ_MAX_MS', DEFAULT_MAX_MS);
  const mutator = new Mutator(new Random(seed), target.maxLength, target.corpus, target.dictionary ?? []);
  const slowest = { ms: 0, hex: '' };
  const where = (i: number): string => `fuzz target "${target.name}", FUZZ_SEED=${seed}, input #${i}`;
  t.diagnostic(`${target.name}: FUZZ_SEED=${seed} FUZZ_INPUTS=${inputs}`);
  const stackTraceLimit = Error.stackTraceLimit;
  // Most inputs make the parser throw; capturing a stack each time would double the cost of an input.
  Error.stackTraceLimit = 0;
  try {
    for (let i = 0; i < inputs; i++) {
      const input = replay ? Buffer.from(replay, 'hex') : mutator.next();
      const ms = timeOne(target, input);
      const error = lastError;
      if (error !== undefined && !target.isParserError(error)) {
        Error.stackTraceLimit = stackTraceLimit;
        timeOne(target, input);
        const withStack = lastError ?? error;
        throw new AssertionError({
          message: `${where(i)} threw something other than the parser's error:\n${describe(withStack)}\ninput (hex, replay with FUZZ_INPUT_HEX): ${hex(input)}`,
        });
      }
      if (ms > slowest.ms) {
        const confirmed = ms > maxMs ? rerunCpuMs(target, input) : ms;
        if (confirmed > maxMs) {
          throw new AssertionError({
            message: `${where(i)} took ${confirmed.toFixed(1)} ms of CPU (least of ${RERUNS} runs), over the ${maxMs} ms bound; ${input.length} bytes\ninput (hex, replay with FUZZ_INPUT_HEX): ${hex(input)}`,
          });
        }
        slowest.ms = confirmed;
        slowest.hex = hex(input);
      }
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  t.diagnostic(
    `${target.name}: slowest input ${slowest.ms.toFixed(3)} ms (${slowest.hex.length / 2} bytes: ${slowest.hex.slice(0, 64)}${slowest.hex.length > 64 ? '…' : ''})`,
  );
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => same((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/** assert.deepEqual for parse results, fast in the hot loop (byte arrays by content); its message on a mismatch. */
export function assertSame(actual: unknown, expected: unknown, message: string): void {
  if (!same(actual, expected)) assert.deepEqual(actual, expected, message);
}
