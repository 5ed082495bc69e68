// One wiretap's copy of the traffic: written without ever waiting, so a slow or broken wiretap cannot slow the real
// exchange. Bytes wait here (while the wiretap's stream is being opened) and in the stream's own buffer up to a
// bound; past it, or on any error, the copy is dropped for good.

import type { Writable } from 'node:stream';

/** Per wiretap copy stream: a few large requests in flight. */
export const WIRETAP_BUFFER_LIMIT = 1024 * 1024;

export class WiretapCopy {
  private queue: Buffer[] = [];
  private queued = 0;
  private target: Writable | undefined;
  private ending = false;
  dropped = false;

  /** `onDrop` is called once, with why, when the copy is given up. */
  constructor(
    open: Promise<Writable>,
    private readonly onDrop: (reason: string) => void,
    private readonly limit = WIRETAP_BUFFER_LIMIT,
  ) {
    open.then(
      (target) => this.attach(target),
      (error: unknown) => this.drop(`the wiretap could not be opened: ${(error as Error).message}`),
    );
  }

  write(chunk: Buffer): void {
    if (this.dropped || chunk.length === 0) return;
    const target = this.target;
    if (target === undefined) {
      if (this.queued + chunk.length > this.limit) return this.drop('the wiretap is slower than the traffic');
      this.queue.push(chunk);
      this.queued += chunk.length;
      return;
    }
    if (target.writableLength + chunk.length > this.limit) return this.drop('the wiretap is slower than the traffic');
    target.write(chunk);
  }

  end(): void {
    this.ending = true;
    if (!this.dropped) this.target?.end();
  }

  /** Ends the copy without a reason to report (the connection is over). */
  close(): void {
    this.dropped = true;
    this.queue = [];
    this.target?.destroy();
  }

  private attach(target: Writable): void {
    target.on('error', (error: Error) => this.drop(`the wiretap failed: ${error.message}`));
    if (this.dropped) {
      target.destroy();
      return;
    }
    this.target = target;
    for (const chunk of this.queue) target.write(chunk);
    this.queue = [];
    this.queued = 0;
    if (this.ending) target.end();
  }

  private drop(reason: string): void {
    if (this.dropped) return;
    this.close();
    this.onDrop(reason);
  }
}
