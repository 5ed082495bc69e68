// Bytes written by the application and not yet acknowledged: a list of the caller's Buffers (retained, not
// copied) with an offset into the first. Segments are views into one chunk, or a copy into a reusable
// scratch Buffer when they straddle chunks.

const EMPTY = Buffer.alloc(0);
const COMPACT_AFTER = 64;

export class SendBuffer {
  private chunks: Buffer[] = [];
  /** Stream position (bytes since the start of the connection) where each chunk starts. */
  private starts: number[] = [];
  private head = 0;
  /** Stream position of the first unacknowledged byte. */
  private basePos = 0;
  private endPos = 0;
  /** Chunk index of the last lookup: segments are read in increasing order. */
  private cursor = 0;
  private scratch: Buffer = EMPTY;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.endPos - this.basePos;
  }

  get free(): number {
    return this.capacity - this.length;
  }

  /** Takes up to the free space; keeps a reference to `data` (the caller must not modify it afterwards). */
  write(data: Buffer): number {
    const n = Math.min(data.length, this.free);
    if (n === 0) return 0;
    this.chunks.push(n === data.length ? data : data.subarray(0, n));
    this.starts.push(this.endPos);
    this.endPos += n;
    return n;
  }

  /** Drops `n` acknowledged bytes from the front. */
  consume(n: number): void {
    this.basePos = Math.min(this.basePos + n, this.endPos);
    while (this.head < this.chunks.length && this.starts[this.head] + this.chunks[this.head].length <= this.basePos) {
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

  /** `len` bytes from `offset` (relative to the first unacknowledged byte). Valid until the next call. */
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
    if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(Math.max(len, 2048));
    let copied = chunk.copy(this.scratch, 0, from);
    while (copied < len) {
      i++;
      const next = this.chunks[i];
      copied += next.copy(this.scratch, copied, 0, Math.min(next.length, len - copied));
    }
    return this.scratch.subarray(0, len);
  }
}
