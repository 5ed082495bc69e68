// Loss and reordering injected at the stack's input, for the kernel tests and the bench: this kernel has no
// netem, and a packet the kernel's own output hook drops is resent at once (never a hole), so faults towards the
// stack are made here. Reordering holds one packet back behind the next one, or for at most REORDER_HOLD_MS when
// nothing follows (a packet displaced, as netem's reorder does, not one held until the peer happens to send again:
// an ACK held behind an ACK that never comes would stall a sender on the emulation, not on its TCP). Seeded: every
// run sees the same faults.
import { performance } from 'node:perf_hooks';
import type { NetStack } from '../../src/netstack/stack.js';

const REORDER_HOLD_MS = 1;

export interface InputImpairment {
  lossPercent: number;
  reorderPercent: number;
}

/** Wraps stack.input; returns the function that restores it. */
export function impairInput(stack: NetStack, { lossPercent, reorderPercent }: InputImpairment): () => void {
  const input = stack.input.bind(stack);
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
    if (random() < lossPercent / 100) return;
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
