// Loss and reordering injected at the stack's input, for the kernel tests and the bench: this kernel has no
// netem, and a packet the kernel's own output hook drops is resent at once (never a hole), so faults towards the
// stack are made here. Reordering holds one packet back behind the next. Seeded: every run sees the same faults.
import type { NetStack } from '../../src/netstack/stack.js';

export interface InputImpairment {
  lossPercent: number;
  reorderPercent: number;
}

/** Wraps stack.input; returns the function that restores it. */
export function impairInput(stack: NetStack, { lossPercent, reorderPercent }: InputImpairment): () => void {
  const input = stack.input.bind(stack);
  let held: { packet: Buffer; verified: boolean } | null = null;
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  stack.input = (packet, now, checksumVerified = false) => {
    if (random() < lossPercent / 100) return;
    if (held === null && random() < reorderPercent / 100) {
      held = { packet, verified: checksumVerified };
      return;
    }
    input(packet, now, checksumVerified);
    if (held !== null) {
      const late = held;
      held = null;
      input(late.packet, now, late.verified);
    }
  };
  return () => {
    stack.input = input;
  };
}
