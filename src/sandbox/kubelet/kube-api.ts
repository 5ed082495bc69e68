// JSON requests to the API server with the kubeconfig's credentials (the informer does the watching).

import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, kubeApiRequest } from '../../k8s/resilient-informer.js';

const REQUEST_TIMEOUT_MS = 15_000;

export type PatchType = 'merge' | 'strategic';

export interface KubeApi {
  request<T = unknown>(method: string, path: string, body?: unknown, patchType?: PatchType): Promise<T>;
}

const CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export function kubeApi(kubeConfig: KubeConfig): KubeApi {
  return {
    async request<T>(method: string, path: string, body?: unknown, patchType: PatchType = 'merge'): Promise<T> {
      let answer;
      try {
        answer = await kubeApiRequest(kubeConfig, {
          method,
          path,
          body,
          timeoutMs: REQUEST_TIMEOUT_MS,
          ...(method === 'PATCH' ? { contentType: CONTENT_TYPES[patchType] } : {}),
        });
      } catch (error) {
        throw new KubeApiError((error as Error).message, 0);
      }
      if (answer.statusCode >= 200 && answer.statusCode < 300) return (answer.body === '' ? undefined : answer.body) as T;
      throw new KubeApiError(`${method} ${path}: ${answer.statusCode} ${answer.message}`, answer.statusCode, answer.reason);
    },
  };
}
