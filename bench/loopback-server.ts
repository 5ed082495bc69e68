// The direct path: the benchmark's servers on the kernel's own TCP, run inside the benchmark namespace.
import { createServer } from 'node:net';
import { HANGUP_PORT, serveBench, SINK_PORT, SOURCE_PORT } from './bench-protocol.js';

const host = process.argv[2] ?? '127.0.0.1';
let listening = 0;
for (const port of [SINK_PORT, SOURCE_PORT, HANGUP_PORT]) {
  const server = createServer({ allowHalfOpen: true }, (socket) => serveBench(port, socket));
  server.listen({ host, port, backlog: 4096 }, () => {
    if (++listening === 3) console.log('ready');
  });
}
