// A TUN device with the user-space stack behind it: what the root daemon runs, and what the demo, the tests and
// the benchmark stand up. Opening configures the link (MTU, addresses, routes); close() removes the device, and
// with it every route through it.
import { NetStack, type NetStackHandlers, type NetStackOptions } from '../netstack/stack.js';
import { addAddress, addRoute, setLinkUp, setMtu, setTxQueueLen } from './link-config.js';
import { StackDriver } from './stack-driver.js';
import { TunDevice } from './tun-device.js';

export interface TunStackOptions {
  name: string;
  /** Create the device inside this network namespace (the process stays where it is). */
  netns?: string;
  mtu: number;
  vnetHeader: boolean;
  offload: boolean;
  /** Addresses of the link itself (CIDR), giving the kernel a source address for the routed prefixes. */
  addresses: string[];
  /** Prefixes routed into the device. */
  routes: string[];
  /** The device's transmit queue in packets: the kernel drops beyond it, so it bounds what may be in flight. */
  txQueueLen?: number;
  stack?: Omit<NetStackOptions, 'mtu' | 'vnetHeader' | 'offload'>;
}

export class TunStack {
  private closed = false;

  private constructor(
    readonly device: TunDevice,
    readonly stack: NetStack,
    private readonly driver: StackDriver,
  ) {}

  static async open(options: TunStackOptions, handlers: NetStackHandlers): Promise<TunStack> {
    const device = TunDevice.open({
      name: options.name,
      netns: options.netns,
      vnetHeader: options.vnetHeader,
      offload: options.offload,
      // Without offloads, checksums in C cost a fraction of the JS loop (see native/tun.c).
      checksum: !options.vnetHeader,
    });
    try {
      const { name, netns } = options;
      await setMtu(name, options.mtu, netns);
      await setTxQueueLen(name, options.txQueueLen ?? 10_000, netns);
      for (const address of options.addresses) await addAddress(name, address, netns);
      await setLinkUp(name, netns);
      for (const route of options.routes) await addRoute(route, name, netns);
    } catch (error) {
      device.close();
      throw error;
    }
    const stack = new NetStack(
      {
        ...options.stack,
        mtu: options.mtu,
        vnetHeader: options.vnetHeader,
        offload: options.offload,
        deviceChecksum: device.checksum,
      },
      handlers,
    );
    const driver = new StackDriver(device, stack);
    driver.start();
    return new TunStack(device, stack, driver);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.driver.stop();
    this.device.close();
  }
}
