// A personal intercept's request filter (manager.proto HttpFilter): checked once where it enters (the manager),
// matched per request by the agent, and compared with the other intercepts of the same port (overlapping
// filters are refused: a request must never have two owners).

import type { HttpFilter } from '../../gen/kubetun/manager/v1/manager_pb.js';

export class HttpFilterError extends Error {
  override readonly name = 'HttpFilterError';
}

/** What the agent compares with: header names lower-cased, regular expressions compiled (anchored). */
export interface CompiledFilter {
  headers: { name: string; value: string; regex: RegExp | undefined }[];
  path: { kind: 'prefix' | 'equal'; value: string } | { kind: 'regex'; value: string; regex: RegExp } | undefined;
}

/** The request line's target and the header fields, names lower-cased, as they arrived. */
export interface RequestHead {
  path: string;
  headers: readonly (readonly [name: string, value: string])[];
}

const MAX_HEADERS = 16;
const MAX_TEXT = 1024;
/** RFC 9110 §5.1 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function compileRegex(source: string, what: string): RegExp {
  if (source.length > MAX_TEXT) throw new HttpFilterError(`${what}: the regular expression is longer than ${MAX_TEXT} characters`);
  try {
    // Anchored: a filter names whole values. No flags: matching stays linear enough for short header values.
    return new RegExp(`^(?:${source})$`);
  } catch (error) {
    throw new HttpFilterError(`${what}: not a regular expression: ${(error as Error).message}`);
  }
}

/** Checks and compiles a filter; throws HttpFilterError naming the bad part. */
export function compileFilter(filter: HttpFilter): CompiledFilter {
  if (filter.headers.length > MAX_HEADERS) throw new HttpFilterError(`at most ${MAX_HEADERS} header matches`);
  const headers = filter.headers.map((h, i) => {
    if (!TOKEN.test(h.name)) throw new HttpFilterError(`header match ${i + 1}: "${h.name}" is not a header name`);
    if (h.value.length > MAX_TEXT || /[\r\n\0]/.test(h.value)) throw new HttpFilterError(`header match ${h.name}: the value is too long or has line breaks`);
    return { name: h.name.toLowerCase(), value: h.value, regex: h.regex ? compileRegex(h.value, `header ${h.name}`) : undefined };
  });
  const given = [filter.pathPrefix, filter.pathEqual, filter.pathRegex].filter((p) => p !== '');
  if (given.length > 1) throw new HttpFilterError('give at most one of path prefix, path equal and path regex');
  let path: CompiledFilter['path'];
  if (filter.pathRegex !== '') path = { kind: 'regex', value: filter.pathRegex, regex: compileRegex(filter.pathRegex, 'path regex') };
  else if (filter.pathEqual !== '') path = { kind: 'equal', value: filter.pathEqual };
  else if (filter.pathPrefix !== '') path = { kind: 'prefix', value: filter.pathPrefix };
  for (const p of given) {
    if (!p.startsWith('/') && path?.kind !== 'regex') throw new HttpFilterError(`path "${p}" must start with /`);
    if (p.length > MAX_TEXT) throw new HttpFilterError(`the path is longer than ${MAX_TEXT} characters`);
  }
  return { headers, path };
}

/** True when the filter selects anything narrower than every request. */
export function isPersonal(filter: HttpFilter | undefined): boolean {
  return filter !== undefined && (filter.headers.length > 0 || filter.pathPrefix !== '' || filter.pathEqual !== '' || filter.pathRegex !== '');
}

/** The path without its query. */
function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/**
 * A field's value as one line: repeated fields combine in order, comma-separated (RFC 9110 §5.3; cookies with
 * "; ", RFC 9113 §8.2.3). Matching the combined value, not each line, keeps filters that differ in an exact value
 * disjoint: a request repeating a header cannot match two of them.
 */
function fieldValue(head: RequestHead, name: string): string | undefined {
  let value: string | undefined;
  for (const [n, v] of head.headers) {
    if (n === name) value = value === undefined ? v : `${value}${name === 'cookie' ? '; ' : ', '}${v}`;
  }
  return value;
}

/** Every header match holds for the field of that name, and the path rule holds. */
export function matchRequest(filter: CompiledFilter, head: RequestHead): boolean {
  for (const want of filter.headers) {
    const value = fieldValue(head, want.name);
    if (value === undefined || !(want.regex ? want.regex.test(value) : value === want.value)) return false;
  }
  const path = filter.path;
  if (path === undefined) return true;
  const p = pathOf(head.path);
  if (path.kind === 'regex') return path.regex.test(p);
  return path.kind === 'equal' ? p === path.value : p.startsWith(path.value);
}

/**
 * Whether some request could match both. Only what is certain counts as disjoint: the same header with two
 * different exact values, two different exact paths, or exact paths/prefixes that cannot meet. Regexes are assumed
 * to overlap anything (refusing a pair wrongly is a clear error; accepting it would split one user's traffic).
 */
export function filtersOverlap(a: CompiledFilter, b: CompiledFilter): boolean {
  for (const x of a.headers) {
    for (const y of b.headers) {
      if (x.name === y.name && x.regex === undefined && y.regex === undefined && x.value !== y.value) return false;
    }
  }
  const p = a.path;
  const q = b.path;
  if (p === undefined || q === undefined || p.kind === 'regex' || q.kind === 'regex') return true;
  if (p.kind === 'equal' && q.kind === 'equal') return p.value === q.value;
  if (p.kind === 'equal') return p.value.startsWith(q.value);
  if (q.kind === 'equal') return q.value.startsWith(p.value);
  return p.value.startsWith(q.value) || q.value.startsWith(p.value);
}

/** One line for status and conflicts: `x-dev=alice, path /api*`. */
export function describeFilter(filter: HttpFilter | undefined): string {
  if (!isPersonal(filter)) return 'all requests';
  const parts = filter!.headers.map((h) => (h.regex ? `${h.name}~/${h.value}/` : `${h.name}=${h.value}`));
  if (filter!.pathPrefix !== '') parts.push(`path ${filter!.pathPrefix}*`);
  if (filter!.pathEqual !== '') parts.push(`path ${filter!.pathEqual}`);
  if (filter!.pathRegex !== '') parts.push(`path ~/${filter!.pathRegex}/`);
  return parts.join(', ');
}
