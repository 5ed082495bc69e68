// IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5) fragment reassembly. No I/O: the caller passes the clock.
// Overlapping fragments drop the whole datagram (RFC 5722), which also defeats overlap-based evasion. The
// offset-0 fragment's packet is kept: an ICMP error about the datagram quotes it (RFC 792, RFC 4443 §3.1), and
// IPv6 takes the next header from it (RFC 8200 §4.5).

export interface ReassemblyLimits {
  /** Datagrams being reassembled at once. */
  maxDatagrams: number;
  /** Fragment bytes held across all datagrams. */
  maxBytes: number;
  /** From a datagram's first fragment to giving up on it. */
  timeoutMs: number;
  /** Largest reassembled payload. */
  maxDatagramSize: number;
}

/** What is kept of the offset-0 fragment's packet: enough for any ICMP error's quote (RFC 4443 stops at 1280). */
const FIRST_PACKET_KEPT = 1280;

const DEFAULT_LIMITS: ReassemblyLimits = {
  maxDatagrams: 64,
  maxBytes: 4 * 1024 * 1024,
  timeoutMs: 30_000,
  maxDatagramSize: 65535,
};

interface Fragment {
  offset: number;
  data: Buffer;
}

interface PartialDatagram {
  /** Sorted by offset, never overlapping. */
  fragments: Fragment[];
  received: number;
  /** Known once the last fragment (more-fragments clear) arrived. */
  totalLength: number | undefined;
  deadline: number;
  /** The start of the offset-0 fragment's IP packet and the caller's tag for it, once it arrived. */
  firstPacket: Buffer | null;
  firstTag: number;
}

/** A datagram add() completed. */
export interface ReassembledDatagram {
  payload: Buffer;
  /** The offset-0 fragment's IP packet, cut to 1280 bytes: header and first bytes, what an ICMP error quotes. */
  firstPacket: Buffer;
  /** The tag add() was given with the offset-0 fragment (IPv6: its fragment header's next header). */
  firstTag: number;
}

export class FragmentReassembler {
  readonly stats = { completed: 0, dropped: 0, timedOut: 0 };
  private readonly limits: ReassemblyLimits;
  /** In arrival order of first fragments, hence of deadlines, as long as the clock never goes back. */
  private readonly datagrams = new Map<string, PartialDatagram>();
  private bytes = 0;

  constructor(limits: Partial<ReassemblyLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /**
   * Adds a fragment (`offset` in bytes) of the datagram `key` (src, dst, protocol and identification, built
   * by the caller), which came in the IP packet `packet`. Returns the datagram when this completed it, else
   * null. The data is copied. Overlaps, inconsistent lengths, oversize datagrams and fragments beyond the
   * limits are dropped (with the datagram they belong to) and counted in stats.dropped.
   */
  add(
    key: string,
    offset: number,
    moreFragments: boolean,
    data: Buffer,
    now: number,
    packet: Buffer = data,
    tag = 0,
  ): ReassembledDatagram | null {
    this.expire(now);
    const end = offset + data.length;
    // Every fragment but the last carries a multiple of 8 bytes, and none is empty.
    const malformed = moreFragments && (data.length === 0 || data.length % 8 !== 0);
    if (malformed || end > this.limits.maxDatagramSize) return this.drop(key);
    let datagram = this.datagrams.get(key);
    if (!datagram) {
      if (this.datagrams.size >= this.limits.maxDatagrams) return this.drop(key);
      datagram = {
        fragments: [],
        received: 0,
        totalLength: undefined,
        deadline: now + this.limits.timeoutMs,
        firstPacket: null,
        firstTag: 0,
      };
      this.datagrams.set(key, datagram);
    }
    if (!moreFragments) {
      if (datagram.totalLength !== undefined && datagram.totalLength !== end) return this.drop(key);
      const last = datagram.fragments[datagram.fragments.length - 1];
      if (last && last.offset + last.data.length > end) return this.drop(key);
      datagram.totalLength = end;
    }
    if (datagram.totalLength !== undefined && end > datagram.totalLength) return this.drop(key);
    const at = insertionIndex(datagram.fragments, offset);
    const before = datagram.fragments[at - 1];
    const after = datagram.fragments[at];
    if (before && before.offset === offset && before.data.length === data.length) return null; // a duplicate
    if (before && before.offset + before.data.length > offset) return this.drop(key);
    if (after && after.offset < end) return this.drop(key);
    if (this.bytes + data.length > this.limits.maxBytes) return this.drop(key);
    datagram.fragments.splice(at, 0, { offset, data: Buffer.from(data) });
    datagram.received += data.length;
    this.bytes += data.length;
    if (offset === 0) {
      // Bounded by maxDatagrams × 1280 bytes besides maxBytes.
      datagram.firstPacket = Buffer.from(packet.subarray(0, FIRST_PACKET_KEPT));
      datagram.firstTag = tag;
    }
    if (datagram.received !== datagram.totalLength) return null;
    // No overlaps and as many bytes as the total: the fragments tile [0, total), so the offset-0 one is there.
    this.forget(key, datagram);
    this.stats.completed++;
    return {
      payload: Buffer.concat(
        datagram.fragments.map((f) => f.data),
        datagram.totalLength,
      ),
      firstPacket: datagram.firstPacket!,
      firstTag: datagram.firstTag,
    };
  }

  /** Gives up on datagrams whose deadline has passed. */
  expire(now: number): void {
    for (const [key, datagram] of this.datagrams) {
      if (datagram.deadline > now) break;
      this.forget(key, datagram);
      this.stats.timedOut++;
    }
  }

  /** The next deadline for expire(), or Infinity when nothing is pending. */
  pollAt(): number {
    for (const datagram of this.datagrams.values()) return datagram.deadline;
    return Infinity;
  }

  private drop(key: string): null {
    const datagram = this.datagrams.get(key);
    if (datagram) this.forget(key, datagram);
    this.stats.dropped++;
    return null;
  }

  private forget(key: string, datagram: PartialDatagram): void {
    this.datagrams.delete(key);
    this.bytes -= datagram.received;
  }
}

/** The index of the first fragment starting after `offset` (binary search). */
function insertionIndex(fragments: Fragment[], offset: number): number {
  let low = 0;
  let high = fragments.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (fragments[mid]!.offset <= offset) low = mid + 1;
    else high = mid;
  }
  return low;
}
