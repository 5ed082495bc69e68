// The direct path: the benchmark's servers on the kernel's own TCP, run inside the benchmark namespace. Prints
// "ready", then one JSON line per finished throughput connection.
import { createServer } from 'node:net';
import { BENCH_PORTS, serveBench } from './bench-protocol.js';

const host = process.argv[2] ?? '127.0.0.1';
let listening = 0;
for (const port of BENCH_PORTS) {
  const server = createServer({ allowHalfOpen: true }, (socket) =>
    serveBench(port, socket, (record) => console.log(JSON.stringify(record))),
  );
  server.listen({ host, port, backlog: 4096 }, () => {
    if (++listening === BENCH_PORTS.length) console.log('ready');
  });
}
