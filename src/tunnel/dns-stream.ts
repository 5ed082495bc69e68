// The client end of the DNS stream (protocol.ts, DNS_STREAM_PATH): many queries on one long-lived stream. Each
// goes out under a message ID of the stream's own, since the machine's resolvers pick theirs independently and
// two could collide, and its answer comes back with the asker's ID. What a manager can make it hold is bounded:
// DNS_STREAM_MAX_IN_FLIGHT queries, each for at most DNS_STREAM_QUERY_TIMEOUT_MS, and one partial answer.

import * as http2 from 'node:http2';
import { DnsFrameReader, frameDnsMessage } from '../dns/dns-framing.js';
import { DNS_STREAM_TYPE } from './protocol.js';
import { answeredError, TunnelError } from './tunnel-error.js';

/** Queries waiting for their answers on one stream (the manager allows a session 256 in flight). */
export const DNS_STREAM_MAX_IN_FLIGHT = 256;
/** A query still unanswered after this long fails with TIMEOUT (a cluster DNS that does not answer takes ≈ 12 s). */
export const DNS_STREAM_QUERY_TIMEOUT_MS = 15_000;

/** The manager does not serve the DNS stream (an older one): the query is to be asked on a stream of its own. */
export class DnsStreamUnsupported extends Error {}

interface Pending {
  /** The asker's message ID. */
  askedId: number;
  resolve(answer: Buffer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class DnsStream {
  private readonly pending = new Map<number, Pending>();
  private readonly frames = new DnsFrameReader();
  private nextId = 0;
  private responded = false;
  private retiring = false;
  /** Why the stream can take no more queries; every later query fails with it. */
  private failure: Error | null = null;

  /** `opener`: the session and credentials the stream was opened with; it serves only those. */
  constructor(
    private readonly stream: http2.ClientHttp2Stream,
    readonly opener: { sessionId: string | undefined; bearerToken: string | undefined },
    private readonly timeoutMs = DNS_STREAM_QUERY_TIMEOUT_MS,
  ) {
    stream.once('response', (headers) => this.onResponse(headers));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (error: Error) => this.ended(error));
    stream.once('close', () => this.ended(undefined));
  }

  /** Takes new queries: not failed, closed or retired. */
  get usable(): boolean {
    return this.failure === null && !this.retiring;
  }

  /** The answer to `message` (wire format, at least a header), with the message's own ID. */
  query(message: Buffer): Promise<Buffer> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (message.length < 12) return Promise.reject(new RangeError('A DNS query has a 12-byte header at least.'));
    if (this.pending.size >= DNS_STREAM_MAX_IN_FLIGHT) {
      return Promise.reject(new TunnelError('LIMIT', `${DNS_STREAM_MAX_IN_FLIGHT} DNS queries are already waiting for the traffic manager.`));
    }
    const id = this.freeId();
    const asked = Buffer.from(message);
    asked.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TunnelError('TIMEOUT', `The traffic manager did not answer a DNS query within ${this.timeoutMs} ms.`));
        this.closeIfRetired();
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { askedId: message.readUInt16BE(0), resolve, reject, timer });
      this.stream.write(frameDnsMessage(asked));
    });
  }

  /** Takes no new queries, and closes once those it has are answered. */
  retire(): void {
    this.retiring = true;
    this.closeIfRetired();
  }

  private freeId(): number {
    // At most DNS_STREAM_MAX_IN_FLIGHT of the 65,536 IDs are taken: this ends within that many steps.
    let id: number;
    do {
      id = this.nextId;
      this.nextId = (this.nextId + 1) & 0xffff;
    } while (this.pending.has(id));
    return id;
  }

  private onResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    this.responded = true;
    const status = headers[':status'] ?? 0;
    if (status === 200 && headers['content-type'] === DNS_STREAM_TYPE) return;
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    // An older manager answers an unknown path 404; a server that is no manager may answer anything else.
    if (status === 404 || status === 405 || status === 200) {
      this.fail(new DnsStreamUnsupported(`The traffic manager answered the DNS stream with ${status}.`));
      return;
    }
    this.fail(answeredError(headers, 'DNS query'));
  }

  private onData(chunk: Buffer): void {
    this.frames.push(chunk);
    let answer: Buffer | null;
    while ((answer = this.frames.next()) !== null) {
      // One too short to carry an ID, or for a query no longer waiting (timed out), answers nothing.
      const waiting = answer.length >= 12 ? this.pending.get(answer.readUInt16BE(0)) : undefined;
      if (waiting === undefined) continue;
      this.pending.delete(answer.readUInt16BE(0));
      clearTimeout(waiting.timer);
      answer.writeUInt16BE(waiting.askedId, 0);
      waiting.resolve(answer);
    }
    this.closeIfRetired();
  }

  private ended(error: Error | undefined): void {
    // A server that refuses streams it does not know (REFUSED_STREAM: not processed, RFC 9113 §8.7) has no DNS stream.
    if (!this.responded && this.stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
      this.fail(new DnsStreamUnsupported('The traffic manager refused the DNS stream.'));
    } else if (error !== undefined) {
      this.fail(new TunnelError('CONNECTION', `The DNS stream to the traffic manager broke: ${error.message}.`, { cause: error }));
    } else {
      this.fail(new TunnelError('CONNECTION', 'The DNS stream to the traffic manager closed.'));
    }
  }

  private closeIfRetired(): void {
    if (this.retiring && this.pending.size === 0 && !this.stream.closed) this.stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }

  private fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.pending.clear();
  }
}
