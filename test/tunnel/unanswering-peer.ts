// A hand-written HTTP/2 peer (a raw TCP server: the preface's SETTINGS, then PING frames of its own every 50 ms,
// never an answer to the client's), standing in for a traffic manager whose PING answers wait behind a loaded,
// lossy connection's data. silence() stops its bytes without closing the connection: a path that died silently.

import { once } from 'node:events';
import * as net from 'node:net';

/** An HTTP/2 frame header (RFC 9113 §4.1) and its payload, on stream 0. */
function frame(type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  return Buffer.concat([header, payload]);
}
const SETTINGS = 0x4;
const PING = 0x6;

export async function unansweringPeer(): Promise<{ port: number; silence(): void; close(): void }> {
  let talking = true;
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(Buffer.concat([frame(SETTINGS, 0), frame(SETTINGS, 0x1)]));
    const chatter = setInterval(() => {
      if (talking && !socket.destroyed) socket.write(frame(PING, 0, Buffer.alloc(8)));
    }, 50);
    socket.once('close', () => clearInterval(chatter));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    silence: () => (talking = false),
    close: () => server.close(),
  };
}
