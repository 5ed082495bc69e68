// The tiny protocol the benchmark's servers speak, the same on the kernel's loopback and on kubetun's stack, so
// one client measures both paths:
//   port 9  (sink):   read to the end, then reply with the byte count as text and close;
//   port 19 (source): read an 8-byte big-endian count, send that many bytes, close;
//   port 13 (hangup): wait for the client's FIN, then close (the client closes first and keeps the TIME-WAIT).
import type { Duplex } from 'node:stream';

export const SINK_PORT = 9;
export const SOURCE_PORT = 19;
export const HANGUP_PORT = 13;

const BLOCK = Buffer.alloc(1 << 20, 0x5a);

export function serveBench(port: number, socket: Duplex): boolean {
  socket.on('error', () => socket.destroy());
  switch (port) {
    case SINK_PORT: {
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('end', () => socket.end(String(bytes)));
      return true;
    }
    case SOURCE_PORT: {
      let header = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        socket.off('data', onData);
        socket.resume();
        void sendBytes(socket, Number(header.readBigUInt64BE(0)));
      };
      socket.on('data', onData);
      return true;
    }
    case HANGUP_PORT:
      socket.on('end', () => socket.end());
      socket.resume();
      return true;
    default:
      return false;
  }
}

async function sendBytes(socket: Duplex, total: number): Promise<void> {
  let left = total;
  while (left > 0) {
    const n = Math.min(left, BLOCK.length);
    left -= n;
    if (!socket.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
      await new Promise((resolve) => socket.once('drain', resolve));
    }
  }
  socket.end();
}
