// A WAN link between two network namespaces, in user space (this kernel has no netem): a TUN device in each, and
// every packet one reads is written to the other after the profile's delay, loss and rate (link-shaper.ts). The
// devices take TSO packets (virtio-net header, offload), so a gigabit costs a few thousand packets a second here;
// a TSO packet some of whose segments are dropped is cut into its wire segments (tso-segments.ts).

import { performance } from 'node:perf_hooks';
import { TunDevice } from '../../rootd/tun-device.js';
import { seededRandom } from '../../seeded-random.js';
import { LinkShaper, type ShaperStats, type WanProfile } from './link-shaper.js';
import { tsoLayout, tsoSegment } from './tso-segments.js';

export interface LinkEnd {
  /** The TUN device's name in its namespace. */
  name: string;
  netns: string;
}

/**
 * Timers fire late, by up to a millisecond: packets due within this much are sent in the current turn, which
 * centres the delay's error on zero instead of making it always positive.
 */
const EARLY_MS = 0.5;

/** Packets in flight in one direction, in departure order (the shaper's times never decrease). */
class Direction {
  readonly shaper: LinkShaper;
  /** TSO packets cut into wire segments because some of theirs were dropped. */
  cut = 0;
  private readonly due: number[] = [];
  private readonly heads: Buffer[] = [];
  private readonly tails: (Buffer | null)[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    private readonly to: TunDevice,
    profile: WanProfile,
    random: () => number,
  ) {
    this.shaper = new LinkShaper(profile, random);
  }

  get queued(): number {
    return this.due.length - this.head;
  }

  take(packets: Buffer[]): void {
    const now = performance.now();
    for (const packet of packets) {
      const layout = tsoLayout(packet);
      const at = this.shaper.admit(now, layout.segments, layout.segmentBytes);
      if (Number.isNaN(at)) continue;
      const kept = this.shaper.kept;
      let all = true;
      for (let i = 0; i < layout.segments; i++) all &&= kept[i] === 1;
      if (all) {
        this.push(at, packet, null);
        continue;
      }
      this.cut++;
      for (let i = 0; i < layout.segments; i++) {
        if (kept[i] === 0) continue;
        const { head, payload } = tsoSegment(packet, layout, i);
        this.push(at, head, payload);
      }
    }
    this.schedule(now);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private push(at: number, head: Buffer, tail: Buffer | null): void {
    this.due.push(at);
    this.heads.push(head);
    this.tails.push(tail);
  }

  private schedule(now: number): void {
    if (this.head === this.due.length) return;
    const next = this.due[this.head]!;
    if (next - now <= EARLY_MS) {
      this.flush();
      return;
    }
    if (next >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => {
      this.timerAt = Infinity;
      this.flush();
    }, next - now - EARLY_MS);
  }

  private flush(): void {
    const now = performance.now();
    let end = this.head;
    while (end < this.due.length && this.due[end]! - now <= EARLY_MS) end++;
    if (end > this.head) {
      const heads = this.heads.slice(this.head, end);
      const tails = this.tails.slice(this.head, end);
      this.head = end;
      // A TUN write never blocks (it ends in the receiving kernel's input path); queued bytes are bounded by the
      // shaper's queue limit.
      this.to.write(heads, tails);
      if (this.head > 4096 && this.head * 2 > this.due.length) {
        this.due.splice(0, this.head);
        this.heads.splice(0, this.head);
        this.tails.splice(0, this.head);
        this.head = 0;
      }
    }
    this.schedule(now);
  }
}

export type DirectionStats = ShaperStats & { queued: number; cut: number };

export interface LinkEmulatorStats {
  /** From end a to end b, and back. */
  aToB: DirectionStats;
  bToA: DirectionStats;
  errors: number;
}

export class LinkEmulator {
  private readonly a: TunDevice;
  private readonly b: TunDevice;
  private readonly aToB: Direction;
  private readonly bToA: Direction;

  /** Opens both devices (down, without addresses: the caller configures them) and starts forwarding. */
  /** Failed device reads and writes: a packet written to an end that is down (EIO) is lost, as on a real link. */
  errors = 0;

  constructor(ends: { a: LinkEnd; b: LinkEnd }, profile: WanProfile, seed: number) {
    this.a = TunDevice.open({ name: ends.a.name, netns: ends.a.netns, vnetHeader: true, offload: true });
    try {
      this.b = TunDevice.open({ name: ends.b.name, netns: ends.b.netns, vnetHeader: true, offload: true });
    } catch (error) {
      this.a.close();
      throw error;
    }
    // One generator per direction, so that what one direction carries does not change the other's losses.
    this.aToB = new Direction(this.b, profile, seededRandom(seed));
    this.bToA = new Direction(this.a, profile, seededRandom(seed ^ 0x5bd1e995));
    const count = (): void => {
      this.errors++;
    };
    this.a.on('error', count);
    this.b.on('error', count);
    this.a.start((packets) => this.aToB.take(packets));
    this.b.start((packets) => this.bToA.take(packets));
  }

  setProfile(profile: WanProfile): void {
    this.aToB.shaper.setProfile(profile);
    this.bToA.shaper.setProfile(profile);
  }

  get stats(): LinkEmulatorStats {
    return {
      aToB: { ...this.aToB.shaper.stats, queued: this.aToB.queued, cut: this.aToB.cut },
      bToA: { ...this.bToA.shaper.stats, queued: this.bToA.queued, cut: this.bToA.cut },
      errors: this.errors,
    };
  }

  /** Deletes both devices, and with them their addresses and routes. */
  close(): void {
    this.aToB.close();
    this.bToA.close();
    this.a.close();
    this.b.close();
  }
}
