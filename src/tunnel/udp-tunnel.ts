// The client end of one connect-udp stream (RFC 9298): UDP payloads in, UDP payloads out, no per-datagram
// allocation beyond the capsule framing. UDP may drop, so a full stream drops datagrams instead of queueing them.

import { EventEmitter } from 'node:events';
import { constants as http2constants, type ClientHttp2Stream } from 'node:http2';
import { CapsuleDecoder, encodeDatagramCapsule } from './capsule.js';

/** The largest UDP payload an IPv4 or IPv6 datagram can carry. */
export const MAX_UDP_PAYLOAD = 65_527;
/** Bytes queued on the stream beyond which new datagrams are dropped, like a full socket buffer would. */
const DROP_THRESHOLD_BYTES = 1024 * 1024;

export interface UdpTunnelEvents {
  datagram: [payload: Buffer];
  /** The stream ended: closed by either side, idle on the manager, or the connection was lost. */
  close: [error?: Error];
}

export class UdpTunnel extends EventEmitter<UdpTunnelEvents> {
  private closed = false;

  constructor(private readonly stream: ClientHttp2Stream) {
    super();
    const decoder = new CapsuleDecoder((payload) => this.emit('datagram', payload));
    stream.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (error) {
        this.finish(error as Error);
        stream.close(http2constants.NGHTTP2_PROTOCOL_ERROR);
      }
    });
    stream.on('end', () => this.finish());
    stream.on('error', (error: Error) => this.finish(error));
    stream.on('close', () => this.finish());
  }

  /** Sends one datagram; false when it was dropped (the tunnel is closed or its send queue is full). */
  send(payload: Uint8Array): boolean {
    if (this.closed || payload.length > MAX_UDP_PAYLOAD) return false;
    if (this.stream.writableLength > DROP_THRESHOLD_BYTES) return false;
    this.stream.write(encodeDatagramCapsule(payload));
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.stream.close(http2constants.NGHTTP2_NO_ERROR);
    this.finish();
  }

  private finish(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', error);
  }
}
