// The receive side: in-order Buffers waiting for the application (handed out as received, no copy), and an
// assembler for out-of-order segments with a bounded number of disjoint blocks and bytes (smoltcp's idea).

import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './tcp-seq.js';

const EMPTY = Buffer.alloc(0);

export class ReceiveQueue {
  private items: Buffer[] = [];
  private head = 0;
  private _bytes = 0;

  get bytes(): number {
    return this._bytes;
  }

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.items.push(data);
    this._bytes += data.length;
  }

  shift(): Buffer | null {
    if (this.head === this.items.length) return null;
    const data = this.items[this.head];
    this.items[this.head] = EMPTY;
    this.head++;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    this._bytes -= data.length;
    return data;
  }
}

/** A contiguous run of received bytes beyond a hole. */
interface Block {
  start: number;
  end: number;
  chunks: Buffer[];
}

export class OutOfOrderAssembler {
  /** Sorted by sequence number, disjoint and not adjacent. */
  private blocks: Block[] = [];
  private _bytes = 0;
  /** A sequence number inside the most recently stored segment, for the first SACK block (RFC 2018). */
  private latest = 0;

  constructor(
    private readonly maxBlocks: number,
    private readonly maxBytes: number,
  ) {}

  get bytes(): number {
    return this._bytes;
  }

  get blockCount(): number {
    return this.blocks.length;
  }

  get isEmpty(): boolean {
    return this.blocks.length === 0;
  }

  /** Stores the parts of [seq, seq+len) not held yet. Returns false (storing nothing) when a bound would be
   *  exceeded. The data Buffer is retained. */
  insert(seq: number, data: Buffer): boolean {
    const end = seqAdd(seq, data.length);
    const blocks = this.blocks;
    // Gaps of the new segment not covered by existing blocks, and how many blocks the result would have.
    let cur = seq;
    let newBytes = 0;
    let firstTouched = -1;
    let lastTouched = -1;
    for (let i = 0; i < blocks.length && seqLe(cur, end); i++) {
      const b = blocks[i];
      if (seqLt(b.end, cur)) continue;
      if (seqGt(b.start, end)) break;
      if (firstTouched < 0) firstTouched = i;
      lastTouched = i;
      if (seqLt(cur, b.start)) {
        newBytes += seqDiff(b.start, cur);
      }
      if (seqGt(b.end, cur)) cur = b.end;
    }
    if (seqLt(cur, end)) {
      newBytes += seqDiff(end, cur);
    }
    if (newBytes === 0) return true;
    // The new segment is contiguous, so it joins every block it touches into one.
    const touched = firstTouched < 0 ? 0 : lastTouched - firstTouched + 1;
    const resultCount = blocks.length - touched + 1;
    if (resultCount > this.maxBlocks || this._bytes + newBytes > this.maxBytes) return false;

    this._bytes += newBytes;
    this.latest = seq;
    if (firstTouched < 0) {
      let at = 0;
      while (at < blocks.length && seqLt(blocks[at].start, seq)) at++;
      blocks.splice(at, 0, { start: seq, end, chunks: [data] });
      return true;
    }
    // Rebuild the merged block from the touched blocks' chunks and the new pieces, in order.
    const merged: Block = { start: seqLt(seq, blocks[firstTouched].start) ? seq : blocks[firstTouched].start, end, chunks: [] };
    cur = seq;
    if (seqLt(seq, blocks[firstTouched].start)) {
      merged.chunks.push(data.subarray(0, seqDiff(blocks[firstTouched].start, seq)));
    }
    for (let i = firstTouched; i <= lastTouched; i++) {
      const b = blocks[i];
      for (const c of b.chunks) merged.chunks.push(c);
      const next = i < lastTouched ? blocks[i + 1].start : end;
      if (seqLt(b.end, next)) {
        merged.chunks.push(data.subarray(seqDiff(b.end, seq), seqDiff(next, seq)));
      }
      merged.end = seqGt(b.end, end) ? b.end : end;
    }
    blocks.splice(firstTouched, touched, merged);
    return true;
  }

  /** Moves every byte that continues `rcvNxt` into `queue`, drops what lies below it; returns the new rcvNxt. */
  drainInto(rcvNxt: number, queue: ReceiveQueue): number {
    const blocks = this.blocks;
    let taken = 0;
    while (taken < blocks.length && seqLe(blocks[taken].start, rcvNxt)) {
      const b = blocks[taken];
      this._bytes -= seqDiff(b.end, b.start);
      if (seqGt(b.end, rcvNxt)) {
        let pos = b.start;
        for (const c of b.chunks) {
          const cEnd = seqAdd(pos, c.length);
          if (seqGt(cEnd, rcvNxt)) queue.push(seqGe(pos, rcvNxt) ? c : c.subarray(seqDiff(rcvNxt, pos)));
          pos = cEnd;
        }
        rcvNxt = b.end;
      }
      taken++;
    }
    if (taken > 0) blocks.splice(0, taken);
    return rcvNxt;
  }

  /** Up to `max` SACK blocks, the one holding the latest segment first, then the others from the highest. */
  sackBlocks(max: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const blocks = this.blocks;
    let first = -1;
    for (let i = 0; i < blocks.length; i++) {
      if (seqLe(blocks[i].start, this.latest) && seqLt(this.latest, blocks[i].end)) first = i;
    }
    if (first >= 0) out.push([blocks[first].start, blocks[first].end]);
    for (let i = blocks.length - 1; i >= 0 && out.length < max; i--) {
      if (i !== first) out.push([blocks[i].start, blocks[i].end]);
    }
    return out;
  }
}
