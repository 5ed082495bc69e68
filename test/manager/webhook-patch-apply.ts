// Applies the RFC 6902 operations the webhook answers with (add, replace, remove) to a copy of a document, as
// the API server does, strictly: a missing parent or a bad index throws, so a patch the API server would refuse
// fails the test too.

import type { JsonPatchOperation } from '../../src/manager/webhook/json-patch.js';

type Json = Record<string, unknown> | unknown[];

function parentOf(document: unknown, path: string): { parent: Json; key: string } {
  const tokens = path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
  const key = tokens.pop()!;
  let parent = document;
  for (const token of tokens) {
    parent = (parent as Record<string, unknown>)?.[token];
    if (typeof parent !== 'object' || parent === null) throw new Error(`${path}: no parent at "${token}"`);
  }
  return { parent: parent as Json, key };
}

export function applyPatch<T>(document: T, patch: readonly JsonPatchOperation[]): T {
  const result = structuredClone(document) as unknown;
  for (const operation of patch) {
    const { parent, key } = parentOf(result, operation.path);
    if (Array.isArray(parent)) {
      const index = key === '-' ? parent.length : Number(key);
      const limit = operation.op === 'add' ? parent.length : parent.length - 1;
      if (!Number.isInteger(index) || index < 0 || index > limit) throw new Error(`${operation.path}: index out of range`);
      if (operation.op === 'add') parent.splice(index, 0, operation.value);
      else if (operation.op === 'replace') parent[index] = operation.value;
      else parent.splice(index, 1);
    } else {
      if (operation.op !== 'add' && !(key in parent)) throw new Error(`${operation.path}: nothing to ${operation.op}`);
      if (operation.op === 'remove') delete parent[key];
      else parent[key] = operation.value;
    }
  }
  return result as T;
}
