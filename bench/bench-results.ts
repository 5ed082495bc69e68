// The cluster benchmarks' results: one row each, printed as a table with the ratio to the direct path, and merged
// into bench/results/latest.json, where each benchmark replaces only the rows of its own id prefix.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const RESULTS = fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));

export interface Result {
  id: string;
  unit: string;
  kubetun: number;
  direct: number | null;
}

/** The middle value (the upper one of an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

export function printResults(results: readonly Result[]): void {
  const width = Math.max(38, ...results.map((r) => r.id.length));
  for (const r of results) {
    const direct = r.direct === null ? '-' : r.direct.toFixed(2);
    const ratio = r.direct === null ? '' : (r.kubetun / r.direct).toFixed(2);
    console.log([r.id.padEnd(width), r.unit.padEnd(6), r.kubetun.toFixed(2).padStart(10), direct.padStart(10), ratio.padStart(6)].join(' '));
  }
}

/** Replaces the rows whose id starts with `prefix` in latest.json by `results`, keeping the other benchmarks' rows. */
export function mergeResults(prefix: string, results: readonly Result[]): void {
  let previous: { results: Result[] } = { results: [] };
  try {
    previous = JSON.parse(readFileSync(RESULTS, 'utf8')) as { results: Result[] };
  } catch {
    // no earlier results yet
  }
  const merged = [...previous.results.filter((r) => !r.id.startsWith(prefix)), ...results];
  writeFileSync(RESULTS, JSON.stringify({ results: merged }, null, 2) + '\n');
}
