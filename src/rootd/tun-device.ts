// A Linux TUN device over the native addon (native/tun.c): batched, non-blocking reads and writes on the loop
// thread. The addon hands each read batch over as a slab of the small packets, the large packets as Buffers of
// their own (read without a second copy), and a table saying where each packet is; the slab views are cut here,
// which is cheaper than making them in C.

import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';

export type TunErrorCode = 'NO_TUN_DEVICE' | 'PERMISSION' | 'NAME_TAKEN' | 'BAD_NAME' | 'NETNS' | 'IO';

const TUN_ERROR_CODES: ReadonlySet<string> = new Set<TunErrorCode>([
  'NO_TUN_DEVICE',
  'PERMISSION',
  'NAME_TAKEN',
  'BAD_NAME',
  'NETNS',
  'IO',
]);

export class TunError extends Error {
  override readonly name = 'TunError';
  /** The errno behind the failure, when there is one. */
  readonly errno: number | undefined;
  constructor(
    readonly code: TunErrorCode,
    message: string,
    options?: { errno?: number; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.errno = options?.errno;
  }
}

export interface TunOpenOptions {
  /** Interface name (1 to 15 characters); the kernel's `%d` pattern (`kt%d`) picks a free number. */
  name: string;
  /** Create the device inside this named network namespace (`ip netns add NAME`). */
  netns?: string;
  /** Prefix every packet, both ways, with a 10-byte virtio_net_hdr (IFF_VNET_HDR). */
  vnetHeader?: boolean;
  /** With vnetHeader: let the kernel hand over unchecksummed TSO segments up to 64 KiB, and take them. */
  offload?: boolean;
  /** IFF_MULTI_QUEUE; opening an existing multi-queue device by name adds a queue. */
  multiQueue?: boolean;
  /**
   * Without vnetHeader: the addon does the TCP/UDP checksum work in C, as a device with checksum offload would.
   * write() fills in the checksum field of every TCP/UDP packet (whatever it held), and start()'s callback is told
   * which packets arrived with a correct TCP/UDP checksum.
   */
  checksum?: boolean;
}

export interface TunStats {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Packets waiting in the write queue because the kernel said EAGAIN. */
  queuedOut: number;
}

/** The length of the virtio_net_hdr that prefixes every packet in vnetHeader mode. */
export const VNET_HDR_LEN = 10;
/** The most packets one read batch holds. */
export const MAX_READ_BATCH = 128;
/** write() returns false once this many bytes wait in the queue. */
export const WRITE_HIGH_WATER_BYTES = 4 * 1024 * 1024;

type NativeHandle = { readonly name: string };

interface NativeTun {
  open(name: string, netns: string | null, options: number, onEvent: (kind: number, errno: number, count: number) => void): NativeHandle;
  /**
   * ends[i] is packet i's end offset in the slab (it starts where the previous slab packet ended), or
   * LARGE_PACKET when it is larges[i]. slab is null when the batch has no small packet, larges when no large one.
   */
  start(
    handle: NativeHandle,
    onBatch: (slab: Buffer | null, larges: Buffer[] | null, count: number) => void,
    ends: Int32Array,
    checked?: Uint8Array,
  ): void;
  /**
   * Queued bytes, or -(queued bytes) - 1 when some packets failed (then takeWriteError tells which errno). Packet i
   * is packets[i] followed by tails[i]; throws a TypeError when tails is not as long as packets.
   */
  write(handle: NativeHandle, packets: readonly Buffer[], tails?: ReadonlyArray<Buffer | null | undefined>): number;
  takeWriteError(handle: NativeHandle): [errno: number, count: number];
  stats(handle: NativeHandle, out: Float64Array): void;
  injectWriteEagain(handle: NativeHandle, count: number): void;
  close(handle: NativeHandle): void;
}

const OPT_VNET_HDR = 1;
const OPT_OFFLOAD = 2;
const OPT_MULTI_QUEUE = 4;
const OPT_CHECKSUM = 8;

/** In the ends table: the packet is in the larges array, not in the slab. */
const LARGE_PACKET = -1;

const EV_DRAIN = 0;
const EV_WRITE_ERROR = 1;
const EV_READ_ERROR = 2;

let addon: NativeTun | undefined;

function packageRoot(from: string): string | undefined {
  let dir = from;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return dir;
}

function loadAddon(): NativeTun {
  if (addon !== undefined) return addon;
  // The package that holds this module; failing that (a build emitted outside the tree, as tests sometimes
  // do), the one the process runs in.
  const roots = [packageRoot(dirname(fileURLToPath(import.meta.url))), packageRoot(process.cwd())];
  const paths = roots.filter((r) => r !== undefined).map((r) => join(r, 'build', 'Release', 'kubetun_tun.node'));
  const path = paths.find((p) => existsSync(p));
  if (path === undefined) {
    throw new TunError('IO', `the native TUN addon is not built (looked for ${paths.join(', ') || 'build/Release/kubetun_tun.node'}): run \`npm run build\``);
  }
  addon = createRequire(import.meta.url)(path) as NativeTun;
  return addon;
}

function toTunError(error: unknown): unknown {
  if (error instanceof Error && TUN_ERROR_CODES.has((error as { code?: string }).code ?? '')) {
    const { code, errno } = error as Error & { code: TunErrorCode; errno?: number };
    return new TunError(code, error.message, { errno, cause: error });
  }
  return error;
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** The packets of a read batch in order: slab views for the small ones, the large ones as they came. */
function assembleBatch(slab: Buffer | null, larges: Buffer[] | null, count: number, ends: Int32Array): Buffer[] {
  if (slab === null) return larges ?? [];
  if (larges === null && count === 1) return [slab];
  // The larges array already has the large packets at their indices; the holes are the slab's.
  const packets = larges ?? new Array<Buffer>(count);
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = ends[i];
    if (end === LARGE_PACKET) continue;
    packets[i] = slab.subarray(start, end);
    start = end;
  }
  return packets;
}

export class TunDevice extends EventEmitter {
  readonly name: string;
  readonly vnetHeader: boolean;
  readonly offload: boolean;
  /** The addon verifies and fills in TCP/UDP checksums (see TunOpenOptions.checksum). */
  readonly checksum: boolean;
  private readonly native: NativeTun;
  private readonly handle: NativeHandle;
  private readonly statsOut = new Float64Array(5);
  private started = false;
  private closed = false;
  private needDrain = false;

  private constructor(native: NativeTun, options: TunOpenOptions) {
    super();
    this.native = native;
    this.vnetHeader = options.vnetHeader === true;
    this.offload = this.vnetHeader && options.offload === true;
    this.checksum = !this.vnetHeader && options.checksum === true;
    const flags =
      (this.vnetHeader ? OPT_VNET_HDR : 0) |
      (this.offload ? OPT_OFFLOAD : 0) |
      (options.multiQueue ? OPT_MULTI_QUEUE : 0) |
      (this.checksum ? OPT_CHECKSUM : 0);
    try {
      this.handle = native.open(options.name, options.netns ?? null, flags, (kind, errno, count) =>
        this.onEvent(kind, errno, count),
      );
    } catch (error) {
      throw toTunError(error);
    }
    this.name = this.handle.name;
  }

  /** Creates the TUN device (down, without addresses: see link-config.ts). Throws TunError. */
  static open(options: TunOpenOptions): TunDevice {
    if (options.offload === true && options.vnetHeader !== true) {
      throw new TunError('IO', 'offload needs vnetHeader: the kernel describes offloaded segments in the virtio_net_hdr');
    }
    return new TunDevice(loadAddon(), options);
  }

  /**
   * Start reading; onPackets gets batches (≤128) of packets, in arrival order; safe to retain. With checksum,
   * checked[i] is 1 when packet i's TCP/UDP checksum is correct (valid until onPackets returns); otherwise null.
   */
  start(onPackets: (packets: Buffer[], checked: Uint8Array | null) => void): void {
    this.assertOpen();
    if (this.started) throw new TunError('IO', `TUN device ${this.name} is already started`);
    this.started = true;
    const ends = new Int32Array(MAX_READ_BATCH);
    const checked = this.checksum ? new Uint8Array(MAX_READ_BATCH) : null;
    this.native.start(
      this.handle,
      (slab, larges, count) => onPackets(assembleBatch(slab, larges, count, ends), checked),
      ends,
      checked ?? undefined,
    );
  }

  /**
   * Writes or queues every packet (never drops). false = the queue is above its high-water mark: wait for 'drain'.
   * With tails (as long as packets, else a TypeError), packet i is packets[i] followed by tails[i] when that is a
   * non-empty Buffer: the stack passes a TCP payload as a view of its send buffer, which the kernel then copies
   * once, instead of it being copied behind the headers first. packets[i] holds the IP header (and with checksum
   * the TCP/UDP checksum field). Both need to stay valid only until write() returns; a queued packet is a copy.
   */
  write(packets: Buffer[], tails?: ReadonlyArray<Buffer | null | undefined>): boolean {
    this.assertOpen();
    let queued = this.native.write(this.handle, packets, tails);
    if (queued < 0) {
      queued = -queued - 1;
      const [errno, count] = this.native.takeWriteError(this.handle);
      const error = this.ioError('writing to', errno, count);
      process.nextTick(() => this.emit('error', error));
    }
    if (queued > WRITE_HIGH_WATER_BYTES) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  get stats(): TunStats {
    this.native.stats(this.handle, this.statsOut);
    const s = this.statsOut;
    return { packetsIn: s[0], bytesIn: s[1], packetsOut: s[2], bytesOut: s[3], queuedOut: s[4] };
  }

  /** Stops reading and writing and deletes the device (unless another queue holds it open). Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close(this.handle);
  }

  /**
   * For tests of the write queue: the next `count` write attempts act as if the kernel said EAGAIN, which a TUN
   * device practically never does (its writes end in the receive path, which does not block).
   */
  injectWriteEagainForTest(count: number): void {
    this.assertOpen();
    this.native.injectWriteEagain(this.handle, count);
  }

  private assertOpen(): void {
    if (this.closed) throw new TunError('IO', `TUN device ${this.name} is closed`);
  }

  private onEvent(kind: number, errno: number, count: number): void {
    if (kind === EV_DRAIN) {
      if (this.needDrain) {
        this.needDrain = false;
        this.emit('drain');
      }
    } else if (kind === EV_WRITE_ERROR) {
      this.emit('error', this.ioError('writing to', errno, count));
    } else if (kind === EV_READ_ERROR) {
      this.emit('error', this.ioError('reading from', errno, 0));
    }
  }

  private ioError(what: string, errno: number, count: number): TunError {
    const packets = count > 0 ? ` (${count} packet${count === 1 ? '' : 's'} lost)` : '';
    const hint = errnoName(errno) === 'EIO' ? `; is the link up? (ip link set ${this.name} up)` : '';
    return new TunError('IO', `${what} TUN device ${this.name} failed: ${errnoName(errno)}${packets}${hint}`, { errno });
  }
}
