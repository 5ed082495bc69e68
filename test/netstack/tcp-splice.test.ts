// TcpSplice against a packet-level client on a fake clock, with an in-memory Duplex standing for the tunnel stream.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Duplex } from 'node:stream';
import { PacketBuilder } from '../../src/netstack/packet-builder.js';
import { NetStack } from '../../src/netstack/stack.js';
import type { TcpConfig } from '../../src/netstack/tcp/tcp-config.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { TcpFlags, type TcpRepr } from '../../src/netstack/wire/reprs.js';
import { parseTcp } from '../../src/netstack/wire/tcp.js';
import type { TcpSplice } from '../../src/netstack/tcp-splice.js';

const { SYN, ACK, FIN, RST, PSH } = TcpFlags;
const CLIENT = parseIp('198.18.0.1');
const SERVICE = parseIp('198.18.10.7');
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The tunnel stream's stand-in: records what is written; `hold` keeps write callbacks until release(). */
class StreamDouble extends Duplex {
  readonly written: Buffer[] = [];
  finished = false;
  hold = false;
  private held: Array<() => void> = [];

  constructor(writableHighWaterMark = 16 * 1024) {
    super({ writableHighWaterMark, allowHalfOpen: true });
    this.on('finish', () => (this.finished = true));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    if (this.hold) this.held.push(() => callback());
    else callback();
  }

  override _read(): void {}

  release(): void {
    this.hold = false;
    for (const callback of this.held.splice(0)) callback();
  }

  get text(): string {
    return Buffer.concat(this.written).toString();
  }
}

/** A client speaking TCP to the stack segment by segment; it receives in order only (no loss here). */
class Client {
  readonly stack: NetStack;
  private readonly peer = new PacketBuilder({ vnetHeader: false, offload: false });
  now = 1000;
  seq = 5000;
  /** The next byte expected from the stack. */
  rcvNxt = 0;
  readonly received: Buffer[] = [];
  finReceived = false;
  rstReceived = false;
  /** The window the stack advertised last. */
  window = 0;
  splice: TcpSplice | null = null;
  readonly events: string[] = [];

  constructor(stream: StreamDouble, tcp: Partial<TcpConfig> = {}) {
    this.stack = new NetStack({ mtu: 1500, tcp: { windowScaling: false, delayedAckMs: 0, ...tcp } }, {
      tcpConnect: (request) => {
        this.splice = request.acceptSplice(stream, {
          up: (n) => this.events.push(`up ${n}`),
          down: (n) => this.events.push(`down ${n}`),
          closed: () => this.events.push('closed'),
        });
      },
    });
    this.stack.onInternalError = (error) => assert.fail(error as Error);
  }

  send(flags: number, payload = Buffer.alloc(0)): void {
    const seg: TcpRepr = { srcPort: 40000, dstPort: 80, seq: this.seq, ack: this.rcvNxt, flags, window: 65535, urgent: 0, options: flags & SYN ? { mss: 1460 } : {}, payload };
    this.stack.input(this.peer.tcp(CLIENT, SERVICE, seg, 1460), this.now);
    this.seq += payload.length + (flags & (SYN | FIN) ? 1 : 0);
  }

  /** Takes the stack's output: in-order data and FIN are taken (and acknowledged when `ack`). */
  poll(ack = true): TcpRepr[] {
    const out: Buffer[] = [];
    this.stack.output(this.now, out);
    const segments = out.map((packet) => parseTcp(parseIpv4(packet).payload, null));
    let advanced = false;
    for (const seg of segments) {
      this.window = seg.window;
      if (seg.flags & RST) this.rstReceived = true;
      if (seg.flags & SYN) {
        this.rcvNxt = seg.seq + 1;
        continue;
      }
      if (seg.payload.length > 0 && seg.seq === this.rcvNxt) {
        this.received.push(seg.payload);
        this.rcvNxt += seg.payload.length;
        advanced = true;
      }
      if (seg.flags & FIN && seg.seq + seg.payload.length === this.rcvNxt) {
        this.finReceived = true;
        this.rcvNxt++;
        advanced = true;
      }
    }
    if (advanced && ack) this.send(ACK);
    return segments;
  }

  connect(): void {
    this.send(SYN);
    this.poll(false);
    this.send(ACK);
  }

  get text(): string {
    return Buffer.concat(this.received).toString();
  }
}

/** Lets stream callbacks and the stack's output alternate until nothing changes. */
async function settle(client: Client, rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await tick();
    client.poll();
  }
}

describe('TcpSplice', () => {
  test('bytes flow both ways, each FIN crosses once its side has sent everything, and the flow ends once', async () => {
    const stream = new StreamDouble();
    const client = new Client(stream);
    client.connect();
    client.send(ACK | PSH, Buffer.from('hello'));
    await settle(client);
    assert.equal(stream.text, 'hello');
    stream.push(Buffer.from('world'));
    await settle(client);
    assert.equal(client.text, 'world');
    client.send(ACK | FIN);
    await settle(client);
    assert.equal(stream.finished, true, "the client's FIN ends the stream");
    assert.equal(client.finReceived, false, 'the stream has not ended: no FIN yet');
    stream.push(Buffer.from('!'));
    stream.push(null);
    await settle(client);
    assert.equal(client.text, 'world!');
    assert.equal(client.finReceived, true);
    assert.deepEqual(client.events, ['up 5', 'down 5', 'down 1', 'closed']);
  });

  test('a stream that does not drain closes the receive window; nothing is lost once it drains', async () => {
    const stream = new StreamDouble(1024);
    const client = new Client(stream, { recvBufferSize: 8192, maxAdvertisedWindow: 8192 });
    client.connect();
    stream.hold = true;
    const sent: Buffer[] = [];
    // 7,000 bytes: within the 8 KiB window, of which the stream takes one write before it asks to wait.
    for (let i = 0; i < 5; i++) {
      const chunk = Buffer.alloc(1400, 97 + i);
      sent.push(chunk);
      client.send(ACK | PSH, chunk);
    }
    await settle(client);
    assert.ok(client.window <= 8192 - 4 * 1400, `the window shrank while the stream held its data (window ${client.window})`);
    stream.release();
    await settle(client);
    assert.deepEqual(Buffer.concat(stream.written), Buffer.concat(sent));
    assert.equal(client.window, 8192, 'the window reopened');
  });

  test('a connection whose send buffer is full pauses the stream until the client acknowledges', async () => {
    const stream = new StreamDouble();
    const client = new Client(stream, { sendBufferSize: 4096 });
    client.connect();
    const data = Buffer.alloc(40_000);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    stream.push(data);
    await tick();
    assert.equal(stream.isPaused(), true, 'the stream waits for room in the send buffer');
    await settle(client, 200);
    assert.deepEqual(Buffer.concat(client.received), data);
    assert.equal(stream.isPaused(), false);
  });

  test('a stream error or a stream closed before its end resets the client', async () => {
    for (const end of [(s: StreamDouble) => s.destroy(new Error('the destination reset')), (s: StreamDouble) => s.destroy()]) {
      const stream = new StreamDouble();
      const client = new Client(stream);
      client.connect();
      stream.on('error', () => undefined);
      end(stream);
      await settle(client, 3);
      assert.equal(client.rstReceived, true);
      assert.deepEqual(client.events, ['closed']);
    }
  });

  test("the client's RST resets the stream", async () => {
    const stream = new StreamDouble();
    const client = new Client(stream);
    client.connect();
    client.send(RST | ACK);
    await settle(client, 3);
    assert.equal(stream.destroyed, true);
    assert.deepEqual(client.events, ['closed']);
  });

  test('client data after the stream closed (its end came first) resets the client', async () => {
    const stream = new StreamDouble();
    const client = new Client(stream);
    client.connect();
    stream.push(null);
    await settle(client);
    assert.equal(client.finReceived, true);
    stream.destroy();
    await tick();
    client.send(ACK | PSH, Buffer.from('late'));
    await settle(client, 3);
    assert.equal(client.rstReceived, true);
    assert.deepEqual(client.events, ['closed']);
  });
});

test('TcpSplice: client data still waiting for the stream when the connection closes cleanly is delivered, not dropped', async () => {
  const stream = new StreamDouble(1024);
  const client = new Client(stream);
  client.connect();
  stream.hold = true;
  const sent = Buffer.alloc(3000, 120);
  client.send(ACK | PSH, sent.subarray(0, 1400));
  client.send(ACK | PSH, sent.subarray(1400));
  client.send(ACK | FIN);
  await settle(client);
  // The destination ends too: our FIN, the client's ACK of it, and the connection is CLOSED (LAST-ACK done).
  stream.push(null);
  await settle(client);
  assert.equal(client.finReceived, true);
  assert.ok(Buffer.concat(stream.written).length < sent.length, 'the stream still holds some of it back');
  stream.release();
  await settle(client);
  assert.deepEqual(Buffer.concat(stream.written), sent);
  assert.equal(stream.finished, true);
  assert.deepEqual(client.events.filter((e) => e === 'closed'), ['closed']);
});
