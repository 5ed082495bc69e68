// JSON Patch (RFC 6902) as an admission webhook answers with it: operations on the pod as the API server sent it.

export type JsonPatchOperation = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/** One reference token of a JSON pointer (RFC 6901): `~` → `~0`, `/` → `~1` (annotation keys hold a `/`). */
export const pointerToken = (token: string | number): string => String(token).replace(/~/g, '~0').replace(/\//g, '~1');

/** `/a/b~1c/0` from ['a', 'b/c', 0]. */
export const pointer = (...tokens: (string | number)[]): string => tokens.map((token) => `/${pointerToken(token)}`).join('');

