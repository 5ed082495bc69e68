// What the peer reported holding beyond the cumulative ACK (RFC 2018 / RFC 6675 scoreboard): sorted,
// merged [start, end) ranges of sequence numbers. Retransmission skips them.

import { seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from './tcp-seq.js';

export class SackScoreboard {
  private starts: number[] = [];
  private ends: number[] = [];
  private _sacked = 0;

  get sackedBytes(): number {
    return this._sacked;
  }

  get isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** The end of the highest SACKed range, or `fallback` when none. */
  highest(fallback: number): number {
    return this.ends.length === 0 ? fallback : this.ends[this.ends.length - 1];
  }

  add(start: number, end: number): void {
    if (!seqLt(start, end)) return;
    const starts = this.starts;
    const ends = this.ends;
    let i = 0;
    while (i < starts.length && seqLt(ends[i], start)) i++;
    let j = i;
    let s = start;
    let e = end;
    while (j < starts.length && seqLe(starts[j], e)) {
      s = seqMin(s, starts[j]);
      e = seqMax(e, ends[j]);
      this._sacked -= seqDiff(ends[j], starts[j]);
      j++;
    }
    starts.splice(i, j - i, s);
    ends.splice(i, j - i, e);
    this._sacked += seqDiff(e, s);
  }

  /** Forgets everything at or below the cumulative ACK. */
  removeBelow(una: number): void {
    let n = 0;
    while (n < this.starts.length && seqLe(this.ends[n], una)) {
      this._sacked -= seqDiff(this.ends[n], this.starts[n]);
      n++;
    }
    if (n > 0) {
      this.starts.splice(0, n);
      this.ends.splice(0, n);
    }
    if (this.starts.length > 0 && seqLt(this.starts[0], una)) {
      this._sacked -= seqDiff(una, this.starts[0]);
      this.starts[0] = una;
    }
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this._sacked = 0;
  }

  /** The end of the SACKed range holding `seq`, or `seq` itself when it is not SACKed. */
  skipSacked(seq: number): number {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqGt(this.starts[i], seq)) break;
      if (seqLt(seq, this.ends[i])) return this.ends[i];
    }
    return seq;
  }

  /** The start of the first SACKed range after `seq`, or `limit` when none comes before it. */
  nextSackedAfter(seq: number, limit: number): number {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqGt(this.starts[i], seq)) return seqMin(this.starts[i], limit);
    }
    return limit;
  }

  /** SACKed bytes within [from, to). */
  sackedBetween(from: number, to: number): number {
    let total = 0;
    for (let i = 0; i < this.starts.length; i++) {
      if (seqGe(this.starts[i], to)) break;
      const s = seqMax(this.starts[i], from);
      const e = seqMin(this.ends[i], to);
      if (seqLt(s, e)) total += seqDiff(e, s);
    }
    return total;
  }
}
