// The agent injector's HTTPS endpoint, which the API server calls for every labelled pod being created
// (POST /mutate-pods, AdmissionReview v1), plus /healthz. It always allows the pod: a failure to inject is
// logged and answered without a patch, so a broken webhook never keeps an application from starting (the
// webhook configuration's failurePolicy is Ignore for the same reason, for when the manager is down).

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../log/logger.js';
import type { WebhookSettings } from '../manager-config.js';
import { mutatePod, type PodMutation } from './pod-mutation.js';

export const MUTATE_PODS_PATH = '/mutate-pods';
/** The API server sends the whole pod: large pods stay far below this, and nothing larger is read. */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024;
const MAX_HEADER_BYTES = 16 * 1024;
// The webhook configuration gives the API server 5 s; a client slower than this is not the API server.
const REQUEST_TIMEOUT_MS = 10_000;
const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
const MAX_CONNECTIONS = 256;

export interface WebhookServer {
  /** `https://host:port`, with the bound port. */
  readonly url: string;
  close(): Promise<void>;
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  object?: unknown;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(type.startsWith('text/') ? `${body}\n` : body);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_REVIEW_BYTES) throw new BadRequest(413, `the body is over ${MAX_REVIEW_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REVIEW_BYTES) throw new BadRequest(413, `the body is over ${MAX_REVIEW_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function admissionRequest(body: Buffer): AdmissionRequest {
  let review: { apiVersion?: unknown; kind?: unknown; request?: Partial<AdmissionRequest> };
  try {
    review = JSON.parse(body.toString('utf8')) as typeof review;
  } catch {
    throw new BadRequest(400, 'the body is not JSON');
  }
  const request = review?.request;
  if (review?.apiVersion !== ADMISSION_API_VERSION || review.kind !== 'AdmissionReview' || typeof request?.uid !== 'string' || request.uid === '') {
    throw new BadRequest(400, `the body is not an ${ADMISSION_API_VERSION} AdmissionReview with a request uid`);
  }
  return request as AdmissionRequest;
}

function isPodCreation(request: AdmissionRequest): boolean {
  const { kind, operation, object } = request;
  return kind?.group === '' && kind.version === 'v1' && kind.kind === 'Pod' && operation === 'CREATE' && typeof object === 'object' && object !== null;
}

function review(uid: string, mutation: PodMutation): string {
  const response: Record<string, unknown> = { uid, allowed: true };
  if (mutation.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(mutation.patch)).toString('base64');
  }
  if (mutation.warning !== undefined) response.warnings = [mutation.warning];
  return JSON.stringify({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });
}

/** Serves the webhook on settings.host:port with the certificate files of settings; resolves once listening. */
export async function startWebhookServer(settings: WebhookSettings, log: Logger, version: string): Promise<WebhookServer> {
  const injection = { agentImage: settings.agentImage, managerAddress: settings.managerAddress, version };
  const admit = (request: AdmissionRequest): string => {
    if (!isPodCreation(request)) return review(request.uid, { patch: [] });
    const pod = request.object as V1Pod;
    const where = { namespace: request.namespace, pod: pod.metadata?.name || pod.metadata?.generateName };
    try {
      const mutation = mutatePod(pod, request.namespace ?? '', injection);
      if (mutation.warning !== undefined) log.warn('agent not injected', { ...where, reason: mutation.warning });
      else if (mutation.patch.length > 0) log.debug('agent injected', where);
      return review(request.uid, mutation);
    } catch (error) {
      log.error('agent injection failed; the pod starts without the agent', { ...where, error: (error as Error).message });
      return review(request.uid, { patch: [] });
    }
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return send(res, 200, 'ok');
    if (path !== MUTATE_PODS_PATH) return send(res, 404, `not found: this port serves POST ${MUTATE_PODS_PATH} and GET /healthz`);
    if (req.method !== 'POST') return send(res, 405, `method not allowed: ${MUTATE_PODS_PATH} takes POST`);
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return send(res, 415, 'unsupported media type: send application/json');
    try {
      send(res, 200, admit(admissionRequest(await readBody(req))), 'application/json');
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      log.debug('bad admission request', { status: error.status, error: error.message });
      res.setHeader('Connection', 'close');
      send(res, error.status, error.message);
    }
  };
  const server: Server = createServer(
    {
      cert: readFileSync(settings.certFile),
      key: readFileSync(settings.keyFile),
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: REQUEST_TIMEOUT_MS,
      handshakeTimeout: REQUEST_TIMEOUT_MS,
    },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        log.error('webhook request failed', { error: (error as Error).message });
        if (!res.headersSent) send(res, 500, 'internal error');
        else res.destroy();
      });
    },
  );
  // Any pod may connect (the NetworkPolicy admits the API server, whose address is not known): held-open
  // connections are bounded, and at worst the API server is turned away and pods start without the agent.
  server.maxConnections = MAX_CONNECTIONS;
  server.on('clientError', (_error, socket) => socket.destroy());
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  log.info('agent injector webhook listening', { host: settings.host, port, path: MUTATE_PODS_PATH });
  return {
    url: `https://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
