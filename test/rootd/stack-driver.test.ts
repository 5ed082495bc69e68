// The driver between a device and the stack, with both faked: how many output rounds (and device writes) a
// packet batch and the application's wakes cost.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetStack } from '../../src/netstack/stack.js';
import { StackDriver } from '../../src/rootd/stack-driver.js';
import type { TunDevice } from '../../src/rootd/tun-device.js';

/** A stack whose input wakes it (as reading a request frees receive window does) and which has work until output. */
class FakeStack {
  onWake: () => void = () => {};
  outputs = 0;
  private work = false;

  input(): void {
    this.wake();
  }

  wake(): void {
    this.work = true;
    this.onWake();
  }

  output(_now: number, out: Buffer[], tails: Array<Buffer | null>): void {
    this.outputs++;
    if (this.work) {
      out.push(Buffer.from('packet'));
      tails.push(null);
    }
    this.work = false;
  }

  pollAt(): number {
    return this.work ? 0 : Infinity;
  }

  releaseOutput(): void {}
}

class FakeDevice {
  onPackets: ((packets: Buffer[], checked: Uint8Array | null) => void) | null = null;
  writes = 0;

  start(onPackets: (packets: Buffer[], checked: Uint8Array | null) => void): void {
    this.onPackets = onPackets;
  }

  write(): boolean {
    this.writes++;
    return true;
  }
}

function driven(): { stack: FakeStack; device: FakeDevice; driver: StackDriver } {
  const stack = new FakeStack();
  const device = new FakeDevice();
  const driver = new StackDriver(device as unknown as TunDevice, stack as unknown as NetStack);
  driver.start();
  return { stack, device, driver };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a wake during a packet batch is served by the batch’s own output round', async () => {
  const { stack, device, driver } = driven();
  device.onPackets!([Buffer.from('a'), Buffer.from('b')], null);
  await nextTurn();
  await nextTurn();
  assert.equal(stack.outputs, 1);
  assert.equal(device.writes, 1);
  driver.stop();
});

test('wakes from the application in one turn share one output round on the next', async () => {
  const { stack, device, driver } = driven();
  stack.wake();
  stack.wake();
  assert.equal(stack.outputs, 0);
  await nextTurn();
  assert.equal(stack.outputs, 1);
  assert.equal(device.writes, 1);
  driver.stop();
});

test('a wake already served by a packet batch’s output costs no second round', async () => {
  const { stack, device, driver } = driven();
  stack.wake();
  device.onPackets!([Buffer.from('a')], null);
  assert.equal(stack.outputs, 1);
  await nextTurn();
  assert.equal(stack.outputs, 1);
  assert.equal(device.writes, 1);
  driver.stop();
});
