// Puts an emulated WAN link (link-emulator.ts) between the sandbox's workstation and node: a TUN device in each,
// and host routes for each other's link addresses over it, which are more specific than the veth's prefixes. Every
// path from the workstation to the cluster then crosses it: the API server (and its port-forward), NodePorts, and
// routes to the cluster's CIDRs through `device`. Closing deletes the devices, and their routes with them, which
// gives the veth its traffic back.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../host-commands.js';
import type { DualStackAddress, SandboxConfig } from '../sandbox-config.js';
import type { LinkEmulatorStats } from './link-emulator.js';
import { validateProfile, type WanProfile } from './link-shaper.js';

const MAIN = fileURLToPath(new URL('./link-emulator-main.js', import.meta.url));
/** The device's name in both namespaces. */
export const WAN_DEVICE = 'ktwan0';
const WAN_MTU = 1500;

/** The two namespaces the link joins, and their addresses on the link they already share. */
export interface WanLinkEnds {
  workstation: { netns: string; address: DualStackAddress };
  node: { netns: string; address: DualStackAddress };
}

export function sandboxWanEnds(config: SandboxConfig): WanLinkEnds {
  return {
    workstation: { netns: config.namespaces.workstation, address: config.link.workstation },
    node: { netns: config.namespaces.node, address: config.link.node },
  };
}

export class WanLink {
  readonly device = WAN_DEVICE;
  private readonly replies: AsyncIterator<string>;

  private constructor(
    private readonly child: ChildProcess,
    lines: Interface,
  ) {
    this.replies = lines[Symbol.asyncIterator]();
  }

  /** Starts the emulator and routes the workstation's traffic to the node through it. Root only. */
  static async start(ends: WanLinkEnds, profile: WanProfile, seed = 1): Promise<WanLink> {
    validateProfile(profile);
    const { workstation, node } = ends;
    const spec = { a: { name: WAN_DEVICE, netns: workstation.netns }, b: { name: WAN_DEVICE, netns: node.netns }, profile, seed };
    const child = spawn(process.execPath, [MAIN, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const link = new WanLink(child, createInterface({ input: child.stdout! }));
    try {
      const ready = await link.next();
      if (!(ready as { ready?: boolean }).ready) throw new Error(`the link emulator said ${JSON.stringify(ready)}`);
      const [ws, nd] = [workstation.address, node.address];
      await ipBatch(workstation.netns, [
        `link set ${WAN_DEVICE} mtu ${WAN_MTU} up`,
        `route add ${nd.ipv4}/32 dev ${WAN_DEVICE} src ${ws.ipv4}`,
        `route add ${nd.ipv6}/128 dev ${WAN_DEVICE} src ${ws.ipv6}`,
      ]);
      await ipBatch(node.netns, [`link set ${WAN_DEVICE} mtu ${WAN_MTU} up`, `route add ${ws.ipv4}/32 dev ${WAN_DEVICE}`, `route add ${ws.ipv6}/128 dev ${WAN_DEVICE}`]);
    } catch (error) {
      await link.close();
      throw error;
    }
    return link;
  }

  async setProfile(profile: WanProfile): Promise<void> {
    validateProfile(profile);
    await this.request({ profile });
  }

  async stats(): Promise<LinkEmulatorStats> {
    return (await this.request({ stats: true })) as LinkEmulatorStats;
  }

  /** Stops the emulator; its devices and their routes go with it. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  private async request(body: unknown): Promise<unknown> {
    this.child.stdin!.write(`${JSON.stringify(body)}\n`);
    const answer = (await this.next()) as { error?: string };
    if (answer.error !== undefined) throw new Error(`the link emulator: ${answer.error}`);
    return answer;
  }

  private async next(): Promise<unknown> {
    const line = await this.replies.next();
    if (line.done === true) throw new Error('the link emulator exited (its error is on stderr)');
    return JSON.parse(line.value) as unknown;
  }
}

async function ipBatch(netns: string, lines: readonly string[]): Promise<void> {
  await runCommand('ip', ['-n', netns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}
