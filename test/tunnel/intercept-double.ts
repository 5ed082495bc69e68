// A test double for the traffic manager's side of intercept streams: a real node:http2 server (extended CONNECT on)
// that answers each kubetun-intercept stream with 200 and hands it to the test as the agent's end, or records a
// refusal (kubetun-error). Only the stream side: no control API.

import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface InterceptStreamDouble {
  url: string;
  /** Each accepted stream, with the headers it came with. */
  accepted: { headers: http2.IncomingHttpHeaders; stream: http2.ServerHttp2Stream }[];
  refused: { headers: http2.IncomingHttpHeaders; endedAtOnce: boolean }[];
  /** Resolves with the next stream accepted or refused. */
  next(): Promise<void>;
  close(): Promise<void>;
}

/** `status` other than 200: every stream without kubetun-error is answered so, with `errorHeaders`. */
export async function startInterceptDouble(status = 200, errorHeaders: http2.OutgoingHttpHeaders = {}): Promise<InterceptStreamDouble> {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  const waiters: (() => void)[] = [];
  const double: InterceptStreamDouble = {
    url: '',
    accepted: [],
    refused: [],
    next: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise((resolve) => {
        for (const a of double.accepted) a.stream.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers['kubetun-error'] !== undefined) {
      double.refused.push({ headers, endedAtOnce: stream.readableEnded || stream.endAfterHeaders });
      stream.respond({ ':status': 502 }, { endStream: true });
    } else if (status !== 200) {
      stream.respond({ ':status': status, ...errorHeaders }, { endStream: true });
    } else {
      stream.respond({ ':status': 200 });
      double.accepted.push({ headers, stream });
    }
    waiters.shift()?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return double;
}
