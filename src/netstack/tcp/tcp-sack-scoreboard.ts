// What the peer reported holding beyond the cumulative ACK (RFC 2018 / RFC 6675 scoreboard): sorted, disjoint,
// non-adjacent [start, end) ranges of sequence numbers. Retransmission skips them.
//
// Bounded against a peer that crafts SACK blocks (cf. CVE-2019-11477/11478, Linux's unbounded SACK work): at
// most maxRanges ranges in two fixed typed arrays, found by binary search, so an operation costs O(log n)
// compares plus at most one memmove of maxRanges entries, and nothing is allocated after the first loss. Past
// the cap the highest range is forgotten. SACK information is advisory (RFC 2018 §8: data stays queued until
// cumulatively acknowledged), so forgetting a range costs at most a needless retransmission, and the holes
// next to SND.UNA, which retransmission repairs first, stay known. Merging two ranges instead would mark the
// hole between them as received and leave it unrepaired until an RTO.

import { seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from './tcp-seq.js';

/** Enough for one hole in every 11th segment of a 4 MiB window at MSS 1460; a path losing more than that
 *  in one window is better served by the retransmission timeout. */
export const MAX_SACK_RANGES = 256;

const NONE = new Uint32Array(0);

export class SackScoreboard {
  /** Allocated on the first SACK: most connections never see one. */
  private starts = NONE;
  private ends = NONE;
  private count = 0;
  private _sacked = 0;

  constructor(private readonly maxRanges = MAX_SACK_RANGES) {}

  get sackedBytes(): number {
    return this._sacked;
  }

  get isEmpty(): boolean {
    return this.count === 0;
  }

  get rangeCount(): number {
    return this.count;
  }

  /** The end of the highest SACKed range, or `fallback` when none. */
  highest(fallback: number): number {
    return this.count === 0 ? fallback : this.ends[this.count - 1];
  }

  add(start: number, end: number): void {
    if (!seqLt(start, end)) return;
    if (this.starts.length === 0) {
      this.starts = new Uint32Array(this.maxRanges);
      this.ends = new Uint32Array(this.maxRanges);
    }
    const starts = this.starts;
    const ends = this.ends;
    // Ranges before i end before `start`; those from i to j touch or overlap [start, end) and merge into it.
    const i = this.firstEndingAtOrAfter(start);
    let j = i;
    let s = start;
    let e = end;
    while (j < this.count && seqLe(starts[j], e)) {
      s = seqMin(s, starts[j]);
      e = seqMax(e, ends[j]);
      this._sacked -= seqDiff(ends[j], starts[j]);
      j++;
    }
    if (j === i) {
      if (this.count === this.maxRanges) {
        if (i === this.count) return;
        this.count--;
        this._sacked -= seqDiff(ends[this.count], starts[this.count]);
      }
      starts.copyWithin(i + 1, i, this.count);
      ends.copyWithin(i + 1, i, this.count);
      this.count++;
    } else if (j > i + 1) {
      starts.copyWithin(i + 1, j, this.count);
      ends.copyWithin(i + 1, j, this.count);
      this.count -= j - i - 1;
    }
    starts[i] = s;
    ends[i] = e;
    this._sacked += seqDiff(e, s);
  }

  /** Forgets everything at or below the cumulative ACK. */
  removeBelow(una: number): void {
    if (this.count === 0) return;
    const starts = this.starts;
    const ends = this.ends;
    const n = this.firstEndingAfter(una);
    if (n > 0) {
      for (let k = 0; k < n; k++) this._sacked -= seqDiff(ends[k], starts[k]);
      starts.copyWithin(0, n, this.count);
      ends.copyWithin(0, n, this.count);
      this.count -= n;
    }
    if (this.count > 0 && seqLt(starts[0], una)) {
      this._sacked -= seqDiff(una, starts[0]);
      starts[0] = una;
    }
  }

  clear(): void {
    this.count = 0;
    this._sacked = 0;
  }

  /** The end of the SACKed range holding `seq`, or `seq` itself when it is not SACKed. */
  skipSacked(seq: number): number {
    const i = this.firstEndingAfter(seq);
    return i < this.count && seqLe(this.starts[i], seq) ? this.ends[i] : seq;
  }

  /** The start of the first SACKed range after `seq`, or `limit` when none comes before it. */
  nextSackedAfter(seq: number, limit: number): number {
    const i = this.firstEndingAfter(seq);
    if (i === this.count) return limit;
    // Range i holds seq or lies above it; in the first case the next one starts after it.
    const k = seqGt(this.starts[i], seq) ? i : i + 1;
    return k < this.count ? seqMin(this.starts[k], limit) : limit;
  }

  /** SACKed bytes within [from, to). */
  sackedBetween(from: number, to: number): number {
    const count = this.count;
    if (count === 0) return 0;
    const starts = this.starts;
    const ends = this.ends;
    if (seqLe(from, starts[0]) && seqGe(to, ends[count - 1])) return this._sacked;
    let total = 0;
    for (let i = this.firstEndingAfter(from); i < count && seqLt(starts[i], to); i++) {
      const s = seqMax(starts[i], from);
      const e = seqMin(ends[i], to);
      if (seqLt(s, e)) total += seqDiff(e, s);
    }
    return total;
  }

  /** Index of the first range whose end is ≥ seq (count when none). */
  private firstEndingAtOrAfter(seq: number): number {
    const ends = this.ends;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqLt(ends[mid], seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first range whose end is > seq, i.e. that holds seq or lies above it (count when none). */
  private firstEndingAfter(seq: number): number {
    const ends = this.ends;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqLe(ends[mid], seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
