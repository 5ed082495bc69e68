// The machine's original DNS servers, asked over the kernel's own sockets (not through the TUN): names that are
// not the cluster's resolve exactly as they did before kubetun. UDP first, TCP when the answer is truncated, the
// next server when one does not answer.
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { connect } from 'node:net';

export class UpstreamDnsError extends Error {
  readonly code = 'UPSTREAM_DNS';
}

const TC = 0x0200;

export class UpstreamResolver {
  constructor(
    private readonly servers: readonly string[],
    private readonly timeoutMs = 2000,
  ) {}

  async query(message: Buffer): Promise<Buffer> {
    let lastError: Error = new UpstreamDnsError('no upstream DNS server is configured');
    for (const server of this.servers) {
      try {
        const answer = await this.overUdp(server, message);
        if ((answer.readUInt16BE(2) & TC) === 0) return answer;
        return await this.overTcp(server, message);
      } catch (error) {
        lastError = error as Error;
      }
    }
    throw lastError;
  }

  private overUdp(server: string, message: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIPv6(server) ? 'udp6' : 'udp4');
      const id = message.readUInt16BE(0);
      const timer = setTimeout(() => finish(new UpstreamDnsError(`the DNS server ${server} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      const finish = (error: Error | null, answer?: Buffer): void => {
        clearTimeout(timer);
        socket.close();
        if (error) reject(error);
        else resolve(answer!);
      };
      socket.on('error', (error) => finish(error));
      socket.on('message', (answer) => {
        if (answer.length >= 12 && answer.readUInt16BE(0) === id) finish(null, answer);
      });
      socket.send(message, 53, server);
    });
  }

  private overTcp(server: string, message: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: server, port: 53 });
      const chunks: Buffer[] = [];
      socket.setTimeout(this.timeoutMs, () => socket.destroy(new UpstreamDnsError(`the DNS server ${server} did not answer over TCP`)));
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
          socket.destroy();
          resolve(all.subarray(2, 2 + all.readUInt16BE(0)));
        }
      });
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.end(Buffer.concat([length, message]));
    });
  }
}
