// Where the local daemons keep their sockets, logs and state. A sandbox workstation gets its own folder: the
// network namespaces share the host's /run, and two root daemons must never share a socket or a resolv.conf backup.
import { join } from 'node:path';

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KUBETUN_RUN_DIR) return env.KUBETUN_RUN_DIR;
  if (env.KUBETUN_SANDBOX) return join('/run/kubetun', `sandbox-${env.KUBETUN_SANDBOX}`);
  return '/run/kubetun';
}

export const rootDaemonSocket = (dir = runDir()): string => join(dir, 'root-daemon.sock');
export const userDaemonSocket = (dir = runDir()): string => join(dir, 'user-daemon.sock');
/** The user daemon's port-forward to the traffic manager, which both daemons dial. */
export const managerForwardSocket = (dir = runDir()): string => join(dir, 'manager-forward.sock');
export const daemonLog = (name: 'root-daemon' | 'user-daemon', dir = runDir()): string => join(dir, `${name}.log`);
