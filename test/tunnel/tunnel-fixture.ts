// A traffic manager in this process on 127.0.0.1:0 and a tunnel client with a live session, for loopback tests.

import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import * as net from 'node:net';
import { parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { silentLogger } from '../../src/log/logger.js';
import { startTrafficManager, type TrafficManager, type TrafficManagerConfig } from '../../src/manager/traffic-manager.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';

export interface TunnelFixture {
  manager: TrafficManager;
  client: TunnelClient;
  close(): Promise<void>;
}

/** A manager's configuration for tests: loopback, a random port, cluster CIDRs that loopback flows do not need. */
export function testManagerConfig(overrides: Partial<TrafficManagerConfig> = {}): TrafficManagerConfig {
  return {
    host: '127.0.0.1',
    port: 0,
    cluster: {
      podCidrs: [parsePrefix('10.244.0.0/16')],
      serviceCidrs: [parsePrefix('10.96.0.0/12')],
      dns: undefined,
      clusterDomain: 'cluster.local',
    },
    allow: [parsePrefix('127.0.0.0/8'), parsePrefix('::1/128')],
    // The echo servers below listen on loopback, which a real manager never dials.
    loopbackTargetsForTests: true,
    sessionTtlMs: 60_000,
    dialTimeoutMs: 2_000,
    udpIdleMs: 60_000,
    version: '0.0.0-test',
    log: silentLogger,
    ...overrides,
  };
}

/** `bearerToken` and `ca`: for a manager whose overrides make it serve TLS with client authentication. */
export async function startTunnel(overrides: Partial<TrafficManagerConfig> = {}, namespace = 'default', bearerToken?: string, ca?: Buffer): Promise<TunnelFixture> {
  const manager = await startTrafficManager(testManagerConfig(overrides));
  const client = await TunnelClient.connect(manager.url, { ...(bearerToken ? { bearerToken } : {}), ...(ca ? { tls: { ca } } : {}) });
  const session = await client.manager.arriveAsClient({ name: 'test', namespace, hostname: 'laptop', version: '0.0.0-test' });
  client.sessionId = session.id;
  return {
    manager,
    client,
    close: async () => {
      client.close();
      await manager.close();
    },
  };
}

/** A TCP echo server on 127.0.0.1 that keeps each direction open until the peer ends it. */
export async function startTcpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A UDP echo server on 127.0.0.1. */
export async function startUdpEcho(): Promise<{ port: number; close(): void }> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  socket.on('message', (message, from) => socket.send(message, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A self-signed certificate for `ip` (openssl), written into `dir`; clients trust it as its own CA. */
export function selfSignedCertificate(dir: string, ip = '127.0.0.1'): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=traffic-manager', '-addext', `subjectAltName=IP:${ip}`,
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  return { certFile, keyFile };
}

/** Writes `data` (ending the write side when done) and collects everything read until the stream ends. */
export async function roundTrip(stream: Duplex, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = once(stream, 'end');
  stream.end(data);
  await ended;
  return Buffer.concat(chunks);
}
