// Bytes written by the application and not yet acknowledged. write() copies them (one memcpy) into chunks
// of our own, so the caller may reuse its Buffer as soon as write() returns, as with any socket. Chunks come
// from a pool shared by all connections, grow with the amount buffered (small for request/response, up to
// MAX_CHUNK for bulk transfers, where a segment then rarely straddles two chunks), and go back to the pool
// once acknowledged. Segments are views into one chunk, or a fresh copy when they straddle two (rare: once
// per chunk); either stays valid until the bytes are acknowledged, so the device may send straight from them.

const EMPTY = Buffer.alloc(0);
const COMPACT_AFTER = 64;
const MIN_CHUNK_SHIFT = 12;
const MAX_CHUNK_SHIFT = 20;
const MIN_CHUNK = 1 << MIN_CHUNK_SHIFT;
const MAX_CHUNK = 1 << MAX_CHUNK_SHIFT;
/** Free chunks kept per size class (power of two), in bytes: enough for a few connections' bursts. */
const POOL_BYTES_PER_CLASS = 2 * MAX_CHUNK;

const pool: Buffer[][] = [];
for (let shift = MIN_CHUNK_SHIFT; shift <= MAX_CHUNK_SHIFT; shift++) pool.push([]);

/** A free chunk of the smallest class that holds `want` bytes (all of them up to MAX_CHUNK). */
function acquireChunk(want: number): Buffer {
  const n = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, want));
  const shift = 32 - Math.clz32(n - 1);
  const free = pool[shift - MIN_CHUNK_SHIFT];
  return free.length > 0 ? (free.pop() as Buffer) : Buffer.allocUnsafe(1 << shift);
}

function releaseChunk(chunk: Buffer): void {
  const free = pool[31 - Math.clz32(chunk.length) - MIN_CHUNK_SHIFT];
  if (free.length * chunk.length < POOL_BYTES_PER_CLASS) free.push(chunk);
}

export class SendBuffer {
  /** Every chunk but the last is full; the last holds the bytes up to endPos. */
  private chunks: Buffer[] = [];
  /** Stream position (bytes since the start of the connection) where each chunk starts. */
  private starts: number[] = [];
  private head = 0;
  /** Stream position of the first unacknowledged byte. */
  private basePos = 0;
  private endPos = 0;
  /** Chunk index of the last lookup: segments are read in increasing order. */
  private cursor = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.endPos - this.basePos;
  }

  get free(): number {
    return this.capacity - this.length;
  }

  /** Copies up to the free space out of `data`; returns how many bytes it took. */
  write(data: Buffer): number {
    const n = Math.min(data.length, this.free);
    let done = 0;
    while (done < n) {
      let last = this.chunks.length - 1;
      let room = last >= 0 ? this.starts[last] + this.chunks[last].length - this.endPos : 0;
      if (room === 0) {
        // Size the chunk by what is buffered too, so a bulk sender's chunks grow to MAX_CHUNK.
        const chunk = acquireChunk(Math.max(n - done, this.length));
        this.chunks.push(chunk);
        this.starts.push(this.endPos);
        last++;
        room = chunk.length;
      }
      const k = Math.min(room, n - done);
      data.copy(this.chunks[last], this.endPos - this.starts[last], done, done + k);
      done += k;
      this.endPos += k;
    }
    return n;
  }

  /** Drops `n` acknowledged bytes from the front. */
  consume(n: number): void {
    this.basePos = Math.min(this.basePos + n, this.endPos);
    if (this.basePos === this.endPos) {
      // Everything acknowledged: an idle connection holds no chunk.
      for (let i = this.head; i < this.chunks.length; i++) releaseChunk(this.chunks[i]);
      this.chunks.length = 0;
      this.starts.length = 0;
      this.head = 0;
      this.cursor = 0;
      return;
    }
    while (this.starts[this.head] + this.chunks[this.head].length <= this.basePos) {
      releaseChunk(this.chunks[this.head]);
      this.chunks[this.head] = EMPTY;
      this.head++;
    }
    if (this.head >= COMPACT_AFTER && this.head * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.starts.splice(0, this.head);
      this.cursor = Math.max(0, this.cursor - this.head);
      this.head = 0;
    }
    if (this.cursor < this.head) this.cursor = this.head;
  }

  /** `len` bytes from `offset` (relative to the first unacknowledged byte), valid until they are consumed. */
  peek(offset: number, len: number): Buffer {
    if (len <= 0) return EMPTY;
    const pos = this.basePos + offset;
    let i = this.cursor;
    if (i >= this.chunks.length || this.starts[i] > pos) i = this.head;
    while (this.starts[i] + this.chunks[i].length <= pos) i++;
    this.cursor = i;
    const chunk = this.chunks[i];
    const from = pos - this.starts[i];
    if (from + len <= chunk.length) return chunk.subarray(from, from + len);
    const joined = Buffer.allocUnsafe(len);
    let copied = chunk.copy(joined, 0, from);
    while (copied < len) {
      i++;
      const next = this.chunks[i];
      copied += next.copy(joined, copied, 0, Math.min(next.length, len - copied));
    }
    return joined;
  }
}
