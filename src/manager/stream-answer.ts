// Answers a tunnel stream with a failure the client can act on: the status, the reason, and a sentence.

import type { ServerHttp2Stream } from 'node:http2';
import { ERROR_HEADER, ERROR_MESSAGE_HEADER, STATUS_FOR_REASON, type WireErrorReason } from '../tunnel/protocol.js';

/** Header values are one line of visible ASCII (RFC 9110 §5.5); anything else becomes "?". */
export function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

export function answerFailure(stream: ServerHttp2Stream, reason: WireErrorReason, message: string): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond(
    { ':status': STATUS_FOR_REASON[reason], [ERROR_HEADER]: reason, [ERROR_MESSAGE_HEADER]: headerSafe(message) },
    { endStream: true },
  );
}

/** A request the manager cannot read (a bad authority or path): 400 with a sentence. */
export function answerBadRequest(stream: ServerHttp2Stream, message: string): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond({ ':status': 400, [ERROR_MESSAGE_HEADER]: headerSafe(message) }, { endStream: true });
}
