// PLACEHOLDER (replaced by h-http at merge): the interface the traffic agent codes against; this version only
// splices every connection to the app.

import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { CompiledFilter } from './http-filter.js';
import type { Logger } from '../../log/logger.js';

export interface PersonalRoute {
  id: string;
  filter: CompiledFilter;
}

export interface HttpRoutingHooks {
  /** The port's personal intercepts now (read for every request/stream: they change while a connection lives). */
  personal(): readonly PersonalRoute[];
  /** The port's wiretap intercept ids now. */
  wiretaps(): readonly string[];
  /** A new connection to the app container (127.0.0.1:containerPort). */
  openApp(): Promise<Duplex>;
  /** A new byte stream to the intercepting client's local server, through the manager; rejects with
   *  InterceptDialError when the client could not take it. `mirror`: a wiretap copy (its answer is discarded). */
  openIntercept(id: string, mirror: boolean): Promise<Duplex>;
  /** Called once per request/stream sent to intercept `id` (status counts). */
  counted(id: string): void;
}

export class InterceptDialError extends Error {
  override readonly name = 'InterceptDialError';
  constructor(
    message: string,
    readonly status: 502 | 504,
  ) {
    super(message);
  }
}

/** Placeholder: splices the connection to the app unchanged. */
export function routeHttpConnection(socket: Socket, hooks: HttpRoutingHooks, log: Logger, options?: { sniffMs?: number }): void {
  void options;
  hooks.personal();
  hooks.wiretaps();
  hooks.openApp().then(
    (app) => {
      socket.pipe(app);
      app.pipe(socket);
      const close = (): void => {
        socket.destroy();
        app.destroy();
      };
      socket.on('error', close);
      app.on('error', close);
    },
    (error: Error) => {
      log.debug('placeholder http routing: app not reachable', { error: error.message });
      socket.destroy();
    },
  );
}
