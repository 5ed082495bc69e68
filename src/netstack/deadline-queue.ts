// A min-heap of (deadline, item) with lazy invalidation: an item may be pushed again with a new deadline and
// stale entries are skipped when popped, so callers never search the heap. This keeps poll cost independent of
// the number of idle flows.

interface Entry<T> {
  at: number;
  item: T;
}

export class DeadlineQueue<T> {
  private heap: Entry<T>[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(at: number, item: T): void {
    if (!Number.isFinite(at)) return;
    const heap = this.heap;
    heap.push({ at, item });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** The earliest deadline in the queue (stale entries included), or Infinity. */
  peekAt(): number {
    return this.heap.length > 0 ? this.heap[0]!.at : Infinity;
  }

  /** Removes and returns every item whose deadline is at or before now. */
  popDue(now: number, into: (item: T, at: number) => void): void {
    const heap = this.heap;
    while (heap.length > 0 && heap[0]!.at <= now) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        this.siftDown(0);
      }
      into(top.item, top.at);
    }
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && heap[l]!.at < heap[smallest]!.at) smallest = l;
      if (r < n && heap[r]!.at < heap[smallest]!.at) smallest = r;
      if (smallest === i) return;
      [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
      i = smallest;
    }
  }
}
