// Two HTTP/2 streams joined into one byte stream (an agent's and its client's): bytes move with backpressure both
// ways (pipe pauses the source while the other's send window is full), each direction ends on its own
// (END_STREAM is passed on as END_STREAM), and a reset of either resets the other. The session's end cuts both.

import { constants as http2constants, type ServerHttp2Stream } from 'node:http2';
import type { ClientSession } from '../session-registry.js';

export function spliceStreams(a: ServerHttp2Stream, b: ServerHttp2Stream, session: ClientSession): void {
  const cut = (stream: ServerHttp2Stream): void => {
    if (!stream.closed && !stream.destroyed) stream.close(http2constants.NGHTTP2_CANCEL);
  };
  const join = (from: ServerHttp2Stream, to: ServerHttp2Stream): void => {
    from.pipe(to);
    // 'aborted' (a reset from the peer) comes before the 'end' Node emits on any close: the other side is reset
    // before pipe could turn that into a clean END_STREAM.
    from.on('aborted', () => cut(to));
    from.on('error', () => cut(to));
    from.on('close', () => {
      if (from.rstCode !== http2constants.NGHTTP2_NO_ERROR) cut(to);
    });
  };
  join(a, b);
  join(b, a);
  const removeEndHook = session.onEnd(() => {
    cut(a);
    cut(b);
  });
  a.once('close', removeEndHook);
  b.once('close', removeEndHook);
}
