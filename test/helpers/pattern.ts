// Deterministic pseudo-random bytes for transfer tests: an AES-CTR keystream, so a GiB costs little CPU and
// both ends can hash what they sent and received.
import { createCipheriv, createHash } from 'node:crypto';

const CHUNK = 256 * 1024;

export class PatternSource {
  private readonly cipher;
  private readonly zeros = Buffer.alloc(CHUNK);
  private remaining: number;
  readonly hash = createHash('sha256');

  constructor(seed: number, bytes: number) {
    const key = Buffer.alloc(16);
    key.writeUInt32BE(seed >>> 0, 0);
    this.cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    this.remaining = bytes;
  }

  /** The next chunk, or null at the end. Each chunk is fresh (the consumer may keep it). */
  next(): Buffer | null {
    if (this.remaining <= 0) return null;
    const n = Math.min(CHUNK, this.remaining);
    this.remaining -= n;
    const chunk = this.cipher.update(n === CHUNK ? this.zeros : this.zeros.subarray(0, n));
    this.hash.update(chunk);
    return chunk;
  }
}

/** Writes the pattern to a writable with backpressure; resolves with the sha256 of what was written. */
export async function writePattern(
  out: NodeJS.WritableStream & { once(event: 'drain', listener: () => void): unknown },
  seed: number,
  bytes: number,
  end = true,
): Promise<string> {
  const source = new PatternSource(seed, bytes);
  for (let chunk = source.next(); chunk !== null; chunk = source.next()) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
  }
  if (end) out.end();
  return source.hash.digest('hex');
}

/**
 * Reads a readable to its end; resolves with the byte count and sha256. Uses events, not `for await`, which
 * would destroy the stream at the end and so forbid writing on a half-closed connection.
 */
export function hashStream(input: NodeJS.ReadableStream): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    input.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    input.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    input.once('error', reject);
  });
}
