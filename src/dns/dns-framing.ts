// DNS messages in a byte stream, each after its length in two bytes (RFC 1035 §4.2.2): DNS over TCP, and the
// tunnel's DNS stream. A message is at most 65,535 bytes, so what a reader holds is bounded by what it was given.

/** The message with its two-byte length in front. */
export function frameDnsMessage(message: Buffer): Buffer {
  if (message.length > 0xffff) throw new RangeError(`A DNS message is at most 65,535 bytes, not ${message.length}.`);
  const framed = Buffer.allocUnsafe(2 + message.length);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}

/** Takes the stream's bytes as they come and gives back whole messages. */
export class DnsFrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
  }

  /** The next whole message (a copy, not a view of the chunks), or null until more bytes come. */
  next(): Buffer | null {
    if (this.buffered.length < 2) return null;
    const length = this.buffered.readUInt16BE(0);
    if (this.buffered.length < 2 + length) return null;
    const message = Buffer.from(this.buffered.subarray(2, 2 + length));
    this.buffered = this.buffered.subarray(2 + length);
    return message;
  }
}
