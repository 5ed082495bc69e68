// DNS lookup time as an application sees it, run in the workstation: `cold` asks names nobody asked before,
// `cached` asks one name again and again. Prints the medians in ms as one JSON line.
import { Resolver } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import { median } from './bench-results.js';

const [server, countText] = process.argv.slice(2);
const count = Number(countText ?? 200);
// Retries as a stub resolver does: over a lossy link a lost datagram costs a timeout, not the run.
const resolver = new Resolver({ timeout: 1000, tries: 3 });
resolver.setServers([server!]);

async function timed(name: string): Promise<number> {
  const start = performance.now();
  try {
    await resolver.resolve4(name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTFOUND') throw error;
  }
  return performance.now() - start;
}

const stamp = Date.now().toString(36);
const cold: number[] = [];
for (let i = 0; i < count; i++) cold.push(await timed(`cold-${stamp}-${i}.default.svc.cluster.local`));
await timed('echo.default.svc.cluster.local');
const cached: number[] = [];
for (let i = 0; i < count; i++) cached.push(await timed('echo.default.svc.cluster.local'));
console.log(JSON.stringify({ coldMs: median(cold), cachedMs: median(cached) }));
