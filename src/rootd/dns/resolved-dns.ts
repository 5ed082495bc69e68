// Split DNS through systemd-resolved, where it runs: kubetun's server becomes the DNS server of the TUN link
// only, with the cluster's search domains and routing-only domains (~svc, ~<namespace>), so only cluster names
// reach kubetun and everything else resolves exactly as before. resolved forgets a link's settings when the
// link goes away, so a killed daemon leaves nothing behind; `revert` undoes them on quit.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

export type CommandRunner = (file: string, args: string[]) => Promise<void>;

const execFileAsync = promisify(execFile);
const runCommand: CommandRunner = async (file, args) => {
  await execFileAsync(file, args, { timeout: 5000 });
};

/** resolved answers on its D-Bus/varlink socket and owns /etc/resolv.conf through its stub. */
export function resolvedRunning(resolvConfPath = '/etc/resolv.conf', socket = '/run/systemd/resolve/io.systemd.Resolve'): boolean {
  return existsSync(socket) && existsSync(resolvConfPath);
}

export class ResolvedDns {
  constructor(
    private readonly device: string,
    private readonly run: CommandRunner = runCommand,
  ) {}

  /**
   * @param searchPath e.g. default.svc.cluster.local, svc.cluster.local, cluster.local (also routes those names)
   * @param namespaces names whose `<svc>.<namespace>` form must come to kubetun too
   */
  async apply(server: string, searchPath: readonly string[], namespaces: readonly string[]): Promise<void> {
    const routingOnly = ['svc', ...namespaces].map((d) => `~${d}`);
    await this.run('resolvectl', ['dns', this.device, server]);
    await this.run('resolvectl', ['domain', this.device, ...searchPath, ...routingOnly]);
    // Never the default route: names outside those domains keep going to the machine's own servers.
    await this.run('resolvectl', ['default-route', this.device, 'false']);
  }

  async revert(): Promise<void> {
    await this.run('resolvectl', ['revert', this.device]);
  }
}
