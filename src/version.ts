import { readFileSync } from 'node:fs';

/** kubetun's version, from package.json (found from the compiled file's place, dist/src/). */
export function kubetunVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}
