// Output packets carved from one large buffer instead of a fresh 64 KiB allocation each: at multi-GiB/s the
// stack would otherwise churn external memory and spend its time in the garbage collector. The owner promises
// that every packet handed out since the last release() has been consumed (written to the device, which copies).

const SLAB_BYTES = 4 << 20;

export class PacketArena {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  alloc(size: number): Buffer {
    if (size > SLAB_BYTES) return Buffer.allocUnsafe(size);
    if (this.used + size > this.slab.length) {
      // Packets still in use keep the old slab alive; the arena moves on to a new one.
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const packet = this.slab.subarray(this.used, this.used + size);
    this.used += size;
    return packet;
  }

  /** Every packet allocated so far is done with: their bytes may be reused. */
  release(): void {
    this.used = 0;
  }
}
