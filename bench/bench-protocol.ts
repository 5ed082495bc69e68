// The tiny protocol the benchmark's servers speak, the same on the kernel's loopback and on kubetun's stack, so
// one client measures both paths. Throughput is counted by the server, where the bytes reach the application:
//   port 9  (sink):   count everything received; report it when the client goes away;
//   port 20 (stream): send until the client goes away; report what the connection accepted;
//   port 13 (hangup): wait for the client's FIN, then close (the client closes first and keeps the TIME-WAIT).
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';

export const SINK_PORT = 9;
export const STREAM_PORT = 20;
export const HANGUP_PORT = 13;
export const BENCH_PORTS = [SINK_PORT, STREAM_PORT, HANGUP_PORT];

/** What one throughput connection moved, measured from its accept to its last byte. */
export interface TransferRecord {
  port: number;
  bytes: number;
  seconds: number;
}

const BLOCK = Buffer.alloc(1 << 20, 0x5a);

export function serveBench(port: number, socket: Duplex, report: (record: TransferRecord) => void): boolean {
  const start = performance.now();
  let bytes = 0;
  let last = start;
  let reported = false;
  const finish = (): void => {
    if (reported) return;
    reported = true;
    report({ port, bytes, seconds: (last - start) / 1000 });
    socket.destroy();
  };
  socket.on('error', finish);
  switch (port) {
    case SINK_PORT:
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        last = performance.now();
      });
      socket.on('end', finish);
      socket.on('close', finish);
      return true;
    case STREAM_PORT: {
      socket.on('close', finish);
      const pump = (): void => {
        while (!reported) {
          const ok = socket.write(BLOCK, (error) => {
            if (error) return;
            bytes += BLOCK.length;
            last = performance.now();
          });
          if (!ok) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      socket.resume();
      pump();
      return true;
    }
    case HANGUP_PORT:
      socket.on('end', () => socket.end());
      socket.on('close', () => socket.destroy());
      socket.resume();
      return true;
    default:
      return false;
  }
}
