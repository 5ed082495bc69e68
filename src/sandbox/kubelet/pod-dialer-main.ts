// Run by the kubelet inside a pod's network namespace (pod-dialer.ts): for each request {id, port} from the
// kubelet it connects to localhost:PORT, as a real kubelet's port-forward does, and hands the connected socket
// back over the IPC channel. Only the socket's file descriptor crosses: no byte of a stream passes through here.
// It ends when the kubelet closes the channel (or dies).

import { connect, type Socket } from 'node:net';

// IPv4 first, as containerd and dockershim dial localhost; ::1 for a server that listens there only.
const HOSTS = ['127.0.0.1', '::1'];

interface DialRequest {
  id: number;
  port: number;
}

function answer(id: number, error: string | undefined, socket?: Socket): void {
  if (!process.connected) {
    socket?.destroy();
    return;
  }
  process.send!(error === undefined ? { id } : { id, error }, socket, (sendError: Error | null) => {
    if (sendError !== null) socket?.destroy();
  });
}

function dial(id: number, port: number, hosts: string[]): void {
  // noDelay, as a real kubelet's Go dialer: a port-forward relays small HTTP/2 frames, which Nagle would hold.
  const socket = connect({ host: hosts[0]!, port, noDelay: true });
  // Paused before it connects, so that no byte the server sends first (HTTP/2's SETTINGS) is read here.
  socket.pause();
  socket.once('connect', () => answer(id, undefined, socket));
  socket.once('error', (error) => {
    if (hosts.length > 1) dial(id, port, hosts.slice(1));
    else answer(id, error.message);
  });
}

if (process.send === undefined) {
  process.stderr.write('pod-dialer-main.js needs an IPC channel: the sandbox kubelet starts it\n');
  process.exit(2);
}
process.on('message', (request: DialRequest) => {
  const { id, port } = request;
  if (!Number.isInteger(id)) return;
  if (!Number.isInteger(port) || port < 1 || port > 65535) answer(id, `${String(port)} is not a port number`);
  else dial(id, port, HOSTS);
});
process.on('disconnect', () => process.exit(0));
