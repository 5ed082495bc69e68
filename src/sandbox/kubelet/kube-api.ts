// JSON requests to the API server with the kubeconfig's credentials (the informer does the watching).

import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError } from '../../k8s/resilient-informer.js';

const REQUEST_TIMEOUT_MS = 15_000;

export type PatchType = 'merge' | 'strategic';

export interface KubeApi {
  request<T = unknown>(method: string, path: string, body?: unknown, patchType?: PatchType): Promise<T>;
}

export function kubeApi(kubeConfig: KubeConfig): KubeApi {
  return {
    async request<T>(method: string, path: string, body?: unknown, patchType: PatchType = 'merge'): Promise<T> {
      const cluster = kubeConfig.getCurrentCluster();
      if (!cluster) throw new Error('the kubeconfig has no current cluster: set a current-context');
      const url = new URL(cluster.server.replace(/\/$/, '') + path);
      const contentType =
        method === 'PATCH' ? (patchType === 'merge' ? 'application/merge-patch+json' : 'application/strategic-merge-patch+json') : 'application/json';
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = { Accept: 'application/json', 'Content-Type': contentType };
      // Node sends a DELETE's body unframed unless its length is given, and the API server then ignores it.
      if (payload !== undefined) headers['Content-Length'] = Buffer.byteLength(payload);
      const opts: https.RequestOptions = { method, headers };
      await kubeConfig.applyToHTTPSOptions(opts);
      const transport = url.protocol === 'http:' ? http : https;
      if (url.protocol === 'http:') delete opts.agent;
      return new Promise<T>((resolve, reject) => {
        const req = transport.request(url, opts, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve((text === '' ? undefined : JSON.parse(text)) as T);
              return;
            }
            let message = text.trim().slice(0, 300);
            let reason: string | undefined;
            try {
              const parsed = JSON.parse(text) as { message?: string; reason?: string };
              message = parsed.message ?? message;
              reason = parsed.reason;
            } catch {
              // not a Status object: keep the text
            }
            reject(new KubeApiError(`${method} ${path}: ${status} ${message}`, status, reason));
          });
        });
        req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer from the API server in ${REQUEST_TIMEOUT_MS} ms`)));
        req.on('error', (error) => reject(error instanceof KubeApiError ? error : new KubeApiError(`${method} ${path}: ${error.message}`, 0)));
        req.end(payload);
      });
    },
  };
}
