// A list+watch cache of one Kubernetes collection that never gives up: a failed list or watch (410 Gone,
// connection loss, 5xx, 403) is reported as an 'error' event and retried with exponential backoff, starting with
// a fresh list so that nothing missed while disconnected (deletions included) stays in the cache. Watches that the
// server ends normally (timeoutSeconds) resume from the last resourceVersion without a new list. Changes are
// coalesced so that a burst of pod updates produces one 'change' event. Lists are paginated (limit + continue), and
// a transform may keep only the fields a user reads, so a large cluster's collection is never one response or
// whole objects in memory.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';

/** What requests to the API server need of a client config: client-node's KubeConfig has it, inClusterAccess() too. */
export type KubeAccess = Pick<KubeConfig, 'getCurrentCluster' | 'applyToHTTPSOptions'>;
import { silentLogger, type Logger } from '../log/logger.js';

export interface InformerOptions<T extends KubernetesObject = KubernetesObject> {
  kubeConfig: KubeAccess;
  /** Collection path, e.g. '/api/v1/nodes', '/api/v1/pods', '/api/v1/namespaces/kube-system/services'. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Restart backoff after a failed list/watch (410 Gone, connection loss, 5xx): default 500 ms doubling to 30 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** Coalesce bursts of changes: 'change' fires at most once per this many ms (default 200). */
  debounceMs?: number;
  /** Objects per list page (default 500, as client-go's reflector). */
  pageSize?: number;
  /**
   * Applied to every object before it is cached (listed or watched): keep only what is read. It must keep
   * metadata.name, namespace and resourceVersion.
   */
  transform?: (object: T) => T;
  log?: Logger;
}

/** A failed request to the Kubernetes API, with the HTTP status (0 when no response arrived). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

interface ListBody<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string; reason?: string };
}

// The server ends each watch after this long; a random spread keeps many informers from re-watching in step.
const WATCH_TIMEOUT_MIN_S = 240;
const WATCH_TIMEOUT_SPREAD_S = 120;
// A watch connection silent for longer than its own timeout plus this margin is dead (no FIN seen).
const WATCH_IDLE_MARGIN_MS = 30_000;
const LIST_TIMEOUT_MS = 60_000;
const WATCH_MIN_LIFETIME_MS = 1_000;
const DEFAULT_PAGE_SIZE = 500;

function objectKey(o: KubernetesObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function statusMessage(body: string): { message?: string; reason?: string } {
  try {
    const status = JSON.parse(body) as { message?: string; reason?: string };
    return { message: status.message, reason: status.reason };
  } catch {
    return {};
  }
}

/** Opens (does not send) a request to the API server of the config's current cluster, with its credentials. */
async function openKubeRequest(
  kubeConfig: KubeAccess,
  method: string,
  pathAndQuery: string,
  headers: Record<string, string | number> = {},
): Promise<http.ClientRequest> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the Kubernetes config has no current cluster: set a current-context');
  const url = new URL(cluster.server.replace(/\/$/, '') + pathAndQuery);
  const opts: https.RequestOptions = { method, headers: { Accept: 'application/json', 'Content-Type': 'application/json', ...headers } };
  await kubeConfig.applyToHTTPSOptions(opts);
  if (url.protocol === 'http:') {
    delete opts.agent;
    return http.request(url, opts);
  }
  return https.request(url, opts);
}

/**
 * One request to the API server with a JSON body (or none), for the calls typed clients make awkward (dry runs,
 * API discovery, status patches). Resolves with any HTTP status; rejects only when no response arrives.
 */
export async function kubeApiRequest(
  kubeConfig: KubeAccess,
  options: { method: string; path: string; body?: unknown; timeoutMs?: number; contentType?: string },
): Promise<{ statusCode: number; body: unknown; message: string; reason?: string }> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  // Node sends a DELETE's body unframed unless its length is given, and the API server then ignores it.
  const headers = {
    ...(options.contentType === undefined ? {} : { 'Content-Type': options.contentType }),
    ...(payload === undefined ? {} : { 'Content-Length': Buffer.byteLength(payload) }),
  };
  const req = await openKubeRequest(kubeConfig, options.method, options.path, headers);
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from the API server within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new Error(`${options.method} ${options.path}: ${e.message}`)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => reject(new Error(`${options.method} ${options.path}: ${e.message}`)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON (e.g. a proxy's error page): keep the text.
        }
        const status = statusMessage(text);
        resolve({ statusCode: res.statusCode ?? 0, body, message: status.message ?? text.trim().slice(0, 300), reason: status.reason });
      });
    });
    req.end(payload);
  });
}

export class ResilientInformer<T extends KubernetesObject> extends EventEmitter<{
  change: [items: T[]];
  error: [error: Error];
}> {
  private readonly cache = new Map<string, T>();
  private readonly log: Logger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly debounceMs: number;
  private started = false;
  private stopped = false;
  private isSynced = false;
  private resourceVersion = '';
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private request: http.ClientRequest | undefined;
  /** Bumped on each (re)start and on stop so that callbacks of an abandoned request do nothing. */
  private generation = 0;
  private readonly syncWaiters = new Set<{ resolve: (items: T[]) => void; reject: (e: Error) => void; failFast: boolean }>();

  constructor(private readonly options: InformerOptions<T>) {
    super();
    this.log = options.log ?? silentLogger;
    this.initialBackoffMs = options.backoff?.initialMs ?? 500;
    this.maxBackoffMs = options.backoff?.maxMs ?? 30_000;
    this.debounceMs = options.debounceMs ?? 200;
    this.backoffMs = this.initialBackoffMs;
    // Without a listener, EventEmitter throws on 'error'; failures are already logged and retried.
    this.on('error', () => undefined);
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.list();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.debounceTimer);
    this.request?.destroy();
    this.request = undefined;
    const error = new Error(`informer for ${this.options.path} stopped before its first list completed`);
    for (const waiter of this.syncWaiters) waiter.reject(error);
    this.syncWaiters.clear();
  }

  items(): T[] {
    return [...this.cache.values()];
  }

  get synced(): boolean {
    return this.isSynced;
  }

  waitForSync(options: { failFast?: boolean; timeoutMs?: number } = {}): Promise<T[]> {
    if (this.isSynced) return Promise.resolve(this.items());
    if (this.stopped) return Promise.reject(new Error(`informer for ${this.options.path} is stopped`));
    return new Promise<T[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = {
        failFast: options.failFast ?? false,
        resolve: (items: T[]) => {
          clearTimeout(timer);
          resolve(items);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.syncWaiters.delete(waiter);
          reject(new Error(`timed out after ${options.timeoutMs} ms waiting for the first list of ${this.options.path}`));
        }, options.timeoutMs);
      }
      this.syncWaiters.add(waiter);
    });
  }

  private query(extra: Record<string, string>): string {
    const params = new URLSearchParams();
    if (this.options.labelSelector) params.set('labelSelector', this.options.labelSelector);
    if (this.options.fieldSelector) params.set('fieldSelector', this.options.fieldSelector);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return `${this.options.path}?${params.toString()}`;
  }

  /** Starts a GET on the API server; calls back with the response, or with an error when none arrives. */
  private async get(
    pathAndQuery: string,
    timeoutMs: number,
    onResponse: (res: http.IncomingMessage) => void,
    onError: (e: Error) => void,
  ): Promise<void> {
    const generation = this.generation;
    const req = await openKubeRequest(this.options.kubeConfig, 'GET', pathAndQuery);
    if (generation !== this.generation) {
      req.on('error', () => undefined); // stopped meanwhile: the unsent request's teardown is of no interest
      req.destroy();
      return;
    }
    req.on('response', onResponse);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no data from the API server for ${timeoutMs} ms`)));
    req.on('error', onError);
    req.end();
    this.request = req;
  }

  /** Lists page by page into a fresh map, which replaces the cache once the last page is in. */
  private list(): void {
    const generation = ++this.generation;
    const fail = (e: Error): void => this.failed(generation, `list ${this.options.path}`, e);
    const items = new Map<string, T>();
    const limit = String(this.options.pageSize ?? DEFAULT_PAGE_SIZE);
    const page = (continueToken: string | undefined): void => {
      this.get(
        this.query(continueToken === undefined ? { limit } : { limit, continue: continueToken }),
        LIST_TIMEOUT_MS,
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', fail);
          res.on('end', () => {
            if (generation !== this.generation) return;
            const body = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              fail(this.httpError(res.statusCode ?? 0, body));
              return;
            }
            let list: ListBody<T>;
            try {
              list = JSON.parse(body) as ListBody<T>;
            } catch (e) {
              fail(new Error(`the API server sent a list that is not JSON: ${(e as Error).message}`));
              return;
            }
            for (const item of list.items ?? []) {
              const kept = this.kept(item);
              items.set(objectKey(kept), kept);
            }
            const next = list.metadata?.continue;
            if (next) {
              page(next);
              return;
            }
            this.listed(items, list.metadata?.resourceVersion ?? '');
            this.watch();
          });
        },
        fail,
      ).catch(fail);
    };
    page(undefined);
  }

  private kept(object: T): T {
    return this.options.transform === undefined ? object : this.options.transform(object);
  }

  private listed(items: Map<string, T>, resourceVersion: string): void {
    const before = new Map([...this.cache].map(([k, o]) => [k, o.metadata?.resourceVersion]));
    this.cache.clear();
    for (const [key, item] of items) this.cache.set(key, item);
    this.resourceVersion = resourceVersion;
    this.backoffMs = this.initialBackoffMs;
    const differs =
      before.size !== this.cache.size ||
      [...this.cache].some(([k, o]) => before.get(k) !== o.metadata?.resourceVersion);
    if (!this.isSynced) {
      this.isSynced = true;
      const items = this.items();
      for (const waiter of this.syncWaiters) waiter.resolve(items);
      this.syncWaiters.clear();
      this.emit('change', items);
    } else if (differs) {
      this.changed();
    }
  }

  private watch(): void {
    const generation = ++this.generation;
    const timeoutS = WATCH_TIMEOUT_MIN_S + Math.floor(Math.random() * WATCH_TIMEOUT_SPREAD_S);
    const path = this.query({
      watch: 'true',
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutS),
    });
    const fail = (e: Error): void => this.failed(generation, `watch ${this.options.path}`, e);
    const startedAt = Date.now();
    this.get(
      path,
      timeoutS * 1000 + WATCH_IDLE_MARGIN_MS,
      (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => fail(this.httpError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', fail);
          return;
        }
        let failedInStream = false;
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        lines.on('line', (line) => {
          if (generation !== this.generation || failedInStream || line.trim() === '') return;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            failedInStream = true;
            fail(new Error('the API server sent a watch event that is not JSON'));
            return;
          }
          if (event.type === 'ERROR') {
            failedInStream = true;
            const code = event.object.code ?? 0;
            fail(new KubeApiError(`${event.object.message ?? 'watch error'} (${code})`, code, event.object.reason));
            return;
          }
          this.applyEvent(event);
        });
        // readline re-emits its input's errors and would throw without a listener.
        lines.on('error', fail);
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('the API server connection was lost during the watch')));
        res.on('end', () => {
          if (generation !== this.generation || failedInStream) return;
          // A watch that ends at once (a proxy closing it, say) must not become a busy loop: back off.
          if (Date.now() - startedAt < WATCH_MIN_LIFETIME_MS) {
            fail(new Error('the API server ended the watch at once'));
            return;
          }
          // A normal end of the watch (its timeout): resume from where it stopped.
          this.log.debug('watch ended; resuming', { path: this.options.path });
          this.watch();
        });
      },
      fail,
    ).catch(fail);
  }

  private applyEvent(event: WatchEvent<T>): void {
    const rv = event.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (event.type === 'BOOKMARK') return;
    const key = objectKey(event.object);
    if (event.type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, this.kept(event.object));
    this.changed();
  }

  private changed(): void {
    if (this.debounceTimer !== undefined || this.stopped) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      if (!this.stopped) this.emit('change', this.items());
    }, this.debounceMs);
  }

  private httpError(statusCode: number, body: string): KubeApiError {
    const { message, reason } = statusMessage(body);
    const what = message ?? (body.trim().slice(0, 200) || http.STATUS_CODES[statusCode] || 'no details');
    return new KubeApiError(`${statusCode} ${http.STATUS_CODES[statusCode] ?? ''}: ${what}`.replace(/ +:/, ':'), statusCode, reason);
  }

  private failed(generation: number, what: string, e: Error): void {
    if (generation !== this.generation || this.stopped) return;
    this.generation++; // ignore anything more from the failed request
    this.request?.destroy();
    this.request = undefined;
    const error =
      e instanceof KubeApiError
        ? new KubeApiError(`${what}: ${e.message}`, e.statusCode, e.reason)
        : new KubeApiError(`${what}: ${e.message}`, 0);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
    this.log.warn('list/watch failed; retrying', { path: this.options.path, error: error.message, retryInMs: delay });
    for (const waiter of this.syncWaiters) {
      if (waiter.failFast) {
        waiter.reject(error);
        this.syncWaiters.delete(waiter);
      }
    }
    this.emit('error', error);
    if (this.stopped) return; // a listener stopped us
    this.retryTimer = setTimeout(() => this.list(), delay);
  }
}
