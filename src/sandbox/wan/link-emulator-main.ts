// The link emulator as a process of its own (root, in the host's namespace; it creates its two TUN devices inside
// the namespaces it is given), so that its CPU is its own and it never slows the process measuring through it.
// argv[2]: JSON { a, b, profile, seed }. It prints {"ready":true} once forwarding, then answers each line of
// stdin: {"profile": WanProfile} → {"ok":true}; {"stats":true} → the stats. End of stdin deletes the devices.

import { createInterface } from 'node:readline';
import { LinkEmulator, type LinkEnd } from './link-emulator.js';
import type { WanProfile } from './link-shaper.js';

interface Start {
  a: LinkEnd;
  b: LinkEnd;
  profile: WanProfile;
  seed: number;
}

function reply(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function fail(error: Error): never {
  process.stderr.write(`kubetun link emulator: ${error.message}\n`);
  process.exit(1);
}

const start = JSON.parse(process.argv[2] ?? '{}') as Start;
let emulator: LinkEmulator;
try {
  emulator = new LinkEmulator({ a: start.a, b: start.b }, start.profile, start.seed);
} catch (error) {
  fail(error as Error);
}
const stop = (): void => {
  emulator.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  try {
    const request = JSON.parse(line) as { profile?: WanProfile; stats?: boolean };
    if (request.profile !== undefined) {
      emulator.setProfile(request.profile);
      reply({ ok: true });
    } else if (request.stats === true) {
      reply(emulator.stats);
    } else {
      reply({ error: `unknown request: ${line.slice(0, 200)}` });
    }
  } catch (error) {
    reply({ error: (error as Error).message });
  }
});
lines.on('close', stop);
reply({ ready: true });
