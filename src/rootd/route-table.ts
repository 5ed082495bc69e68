// The routes kubetun installed into its TUN device, kept equal to a desired set as the cluster's subnets change.
// Everything it adds goes through the device, so deleting the device (or clear()) removes them all.
import { formatPrefix, type IpPrefix } from '../netstack/wire/ip-address.js';
import { addRoute, deleteRoute, LinkConfigError } from './link-config.js';

export class RouteTable {
  private readonly installed = new Set<string>();

  constructor(
    private readonly device: string,
    private readonly netns?: string,
  ) {}

  get routes(): string[] {
    return [...this.installed];
  }

  /** Adds what is missing and removes what is no longer wanted; returns what changed. */
  async apply(desired: readonly IpPrefix[]): Promise<{ added: string[]; removed: string[] }> {
    const want = new Set(desired.map(formatPrefix));
    const added: string[] = [];
    const removed: string[] = [];
    for (const cidr of this.installed) {
      if (want.has(cidr)) continue;
      await this.remove(cidr);
      removed.push(cidr);
    }
    for (const cidr of want) {
      if (this.installed.has(cidr)) continue;
      try {
        await addRoute(cidr, this.device, this.netns);
      } catch (error) {
        if (!(error instanceof LinkConfigError && error.code === 'EXISTS')) throw error;
      }
      this.installed.add(cidr);
      added.push(cidr);
    }
    return { added, removed };
  }

  async clear(): Promise<void> {
    for (const cidr of [...this.installed]) await this.remove(cidr);
  }

  private async remove(cidr: string): Promise<void> {
    try {
      await deleteRoute(cidr, this.device, this.netns);
    } catch (error) {
      if (!(error instanceof LinkConfigError && error.code === 'NOT_FOUND')) throw error;
    }
    this.installed.delete(cidr);
  }
}
