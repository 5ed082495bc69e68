// Pull-style reading of a byte stream, so a parser can take exactly the bytes of one message and leave the rest
// for the next one (pipelined requests, a body followed by the next head). Reading only when asked keeps Node's
// own backpressure: a peer that sends faster than we forward is paused at the stream's high-water mark.

import type { Duplex } from 'node:stream';

export class ByteReader {
  private pending: Buffer | undefined;
  private wake: (() => void) | undefined;
  private finished = false;
  private failure: Error | undefined;
  private readonly onReadable = (): void => this.signal();
  private readonly onEnd = (): void => {
    this.finished = true;
    this.signal();
  };
  private readonly onError = (error: Error): void => {
    this.failure = error;
    this.signal();
  };

  constructor(readonly stream: Duplex) {
    stream.on('readable', this.onReadable);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  /** The next bytes; null at the end of the stream. Rejects with the stream's error. */
  async read(): Promise<Buffer | null> {
    const chunk = await this.readWithin(undefined);
    return chunk === 'timeout' ? null : chunk;
  }

  /** Like read, but gives up after `ms` (undefined: never) with 'timeout'; no bytes are lost by giving up. */
  async readWithin(ms: number | undefined): Promise<Buffer | null | 'timeout'> {
    if (this.pending !== undefined) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    let timedOut = false;
    for (;;) {
      const chunk = this.stream.read() as Buffer | null;
      if (chunk !== null) return chunk;
      if (this.failure !== undefined) throw this.failure;
      if (this.finished) return null;
      if (timedOut) return 'timeout';
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (ms !== undefined) {
          timer = setTimeout(() => {
            timedOut = true;
            resolve();
          }, ms);
        }
      });
      clearTimeout(timer);
    }
  }

  /** Gives back bytes read but not used: the next read returns them first. */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending = this.pending === undefined ? chunk : Buffer.concat([chunk, this.pending]);
  }

  /** True once the stream ended or failed and nothing is left to read. */
  get done(): boolean {
    return this.pending === undefined && (this.finished || this.failure !== undefined || this.stream.destroyed);
  }

  /** Stops reading (the stream goes to someone else); returns the bytes read but not used. */
  detach(): Buffer {
    this.stream.off('readable', this.onReadable);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    const left = this.pending ?? Buffer.alloc(0);
    this.pending = undefined;
    return left;
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError';
}

/** Writes `chunk` and waits while the stream's buffer is full; rejects when the stream closes first. */
export async function writeAll(stream: Duplex, chunk: Buffer): Promise<void> {
  if (stream.destroyed || stream.writableEnded) throw new StreamClosedError('the peer closed the connection');
  if (chunk.length === 0 || stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', fail);
      resolve();
    };
    const fail = (): void => {
      stream.off('drain', done);
      stream.off('close', fail);
      reject(new StreamClosedError('the peer closed the connection'));
    };
    stream.on('drain', done);
    stream.on('close', fail);
  });
}

/** Joins two streams for the rest of their lives, first delivering the bytes each side had already read. */
export function splice(a: Duplex, aRead: Buffer, b: Duplex, bRead: Buffer): void {
  const close = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
  if (aRead.length > 0) b.write(aRead);
  if (bRead.length > 0) a.write(bRead);
  a.pipe(b);
  b.pipe(a);
}
