// Loss and reordering injected at the stack's input, for the kernel tests and the bench: this kernel has no
// netem, and a packet the kernel's own output hook drops is resent at once (never a hole), so faults towards the
// stack are made here. Reordering holds one packet back behind the next one, or for at most REORDER_HOLD_MS when
// nothing follows (a packet displaced, as netem's reorder does, not one held until the peer happens to send again:
// an ACK held behind an ACK that never comes would stall a sender on the emulation, not on its TCP). Seeded: every
// run sees the same faults.
import { performance } from 'node:perf_hooks';
import type { NetStack } from '../../src/netstack/stack.js';
import { VIRTIO_NET_HDR_LEN } from '../../src/netstack/wire/virtio-net-hdr.js';

const REORDER_HOLD_MS = 1;

export interface InputImpairment {
  lossPercent: number;
  reorderPercent: number;
  /**
   * A lost data segment's resends (same ports and sequence number) are lost too for this long, so the hole stays
   * open across many of the stack's own transmits: whether any of them falls inside a hole that the peer fills
   * within a round trip is otherwise left to the scheduler. Needs `vnetHeader` when the device has one.
   */
  holeMs?: number;
  vnetHeader?: boolean;
}

/** Ports and sequence number of a TCP segment carrying data, or null. */
function dataSegmentKey(ip: Buffer): string | null {
  const version = ip[0]! >> 4;
  const header = version === 4 ? (ip[0]! & 0x0f) * 4 : version === 6 ? 40 : -1;
  if (header < 0 || ip[version === 4 ? 9 : 6] !== 6 || ip.length < header + 20) return null;
  const ipLength = version === 4 ? ip.readUInt16BE(2) : 40 + ip.readUInt16BE(4);
  if (ipLength - header - (ip[header + 12]! >> 4) * 4 <= 0) return null;
  return `${ip.readUInt32BE(header)}/${ip.readUInt32BE(header + 4)}`;
}

/** Wraps stack.input; returns the function that restores it. */
export function impairInput(stack: NetStack, { lossPercent, reorderPercent, holeMs = 0, vnetHeader = false }: InputImpairment): () => void {
  const input = stack.input.bind(stack);
  const holes = new Map<string, number>();
  const key = (packet: Buffer): string | null => (holeMs > 0 ? dataSegmentKey(vnetHeader ? packet.subarray(VIRTIO_NET_HDR_LEN) : packet) : null);
  let held: { packet: Buffer; verified: boolean; timer: NodeJS.Timeout } | null = null;
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const release = (now: number): void => {
    if (held === null) return;
    const late = held;
    held = null;
    clearTimeout(late.timer);
    input(late.packet, now, late.verified);
  };
  stack.input = (packet, now, checksumVerified = false) => {
    const segment = key(packet);
    if (segment !== null && (holes.get(segment) ?? -Infinity) > now) return;
    if (random() < lossPercent / 100) {
      if (segment !== null) holes.set(segment, now + holeMs);
      return;
    }
    if (held === null && random() < reorderPercent / 100) {
      const timer = setTimeout(() => {
        release(performance.now());
        stack.onWake();
      }, REORDER_HOLD_MS);
      held = { packet, verified: checksumVerified, timer };
      return;
    }
    input(packet, now, checksumVerified);
    release(now);
  };
  return () => {
    release(performance.now());
    stack.input = input;
  };
}
