// A test double for the traffic manager's side of intercept streams: a real node:http2 server (extended CONNECT on)
// that answers each kubetun-intercept stream with 200 and hands it to the test as the agent's end, or records a
// refusal (kubetun-error). The control API is whatever `routes` the test gives (its own double of the manager's).

import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { TunnelClient, type TunnelClientOptions } from '../../src/tunnel/tunnel-client.js';

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
export async function startInterceptDouble(
  status = 200,
  errorHeaders: http2.OutgoingHttpHeaders = {},
  routes?: (router: ConnectRouter) => void,
): Promise<InterceptStreamDouble> {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  // A 'request' listener is also what makes the server emit 'connect'.
  server.on('request', routes === undefined ? (_req, res: http2.Http2ServerResponse) => res.writeHead(404).end() : connectNodeAdapter({ routes }));
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
  // CONNECT streams come as 'connect', not as 'request'.
  server.on('connect', ({ stream, headers }: http2.Http2ServerRequest) => {
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

/** Runs `body` with a double (answering `status`) and a TunnelClient connected to it; closes both after. */
export async function withInterceptDouble(
  body: (double: InterceptStreamDouble, client: TunnelClient) => Promise<void>,
  clientOptions: TunnelClientOptions = { sessionId: 's' },
  status = 200,
  errorHeaders: http2.OutgoingHttpHeaders = {},
): Promise<void> {
  const double = await startInterceptDouble(status, errorHeaders);
  const client = await TunnelClient.connect(double.url, { heartbeat: false, ...clientOptions });
  try {
    await body(double, client);
  } finally {
    client.close();
    await double.close();
  }
}
