// Who is at the other end of a Unix socket, as the kernel says (SO_PEERCRED, through native/peer-credentials.c:
// Node has no API for it). The daemons check it on every connection before reading a byte.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface PeerAddon {
  peerCredentials(fd: number): PeerCredentials;
}

let addon: PeerAddon | undefined;

function loadAddon(): PeerAddon {
  // dist/src/rpc/ → the package's build/ (node-gyp builds beside dist/).
  addon ??= createRequire(import.meta.url)('../../../build/Release/kubetun_peer.node') as PeerAddon;
  return addon;
}

/** The connected peer's credentials; throws when the socket has no descriptor (not a Unix socket, or closed). */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) throw new Error('the connection has no file descriptor to ask the kernel about');
  return loadAddon().peerCredentials(fd);
}
