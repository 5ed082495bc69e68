// Where the local daemons keep their sockets, logs and state. A sandbox workstation gets its own folder: the
// network namespaces share the host's /run, and two root daemons must never share a socket or a resolv.conf backup.
import { join } from 'node:path';

export class LocalPathError extends Error {
  readonly code = 'LOCAL_PATH';
}

// A sandbox name becomes part of paths root writes: letters, digits and '-' only, so no '/' or '..' gets in.
const SANDBOX_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** The sandbox named by KUBETUN_SANDBOX (undefined when unset), refused unless it is a plain name. */
export function sandboxName(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = env.KUBETUN_SANDBOX;
  if (name === undefined || name === '') return undefined;
  if (!SANDBOX_NAME.test(name)) {
    throw new LocalPathError(
      `KUBETUN_SANDBOX "${name}" is not a sandbox name: use up to 32 lower-case letters, digits and '-' (as given to kubetun sandbox up)`,
    );
  }
  return name;
}

const underSandbox = (base: string, sandbox: string | undefined): string => (sandbox === undefined ? base : join(base, `sandbox-${sandbox}`));

/** What root keeps across a reboot (the resolv.conf backup): /var/lib/kubetun, per sandbox below it. */
export const rootStateDir = (sandbox: string | undefined): string => underSandbox('/var/lib/kubetun', sandbox);

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KUBETUN_RUN_DIR) return env.KUBETUN_RUN_DIR;
  return underSandbox('/run/kubetun', sandboxName(env));
}

export const rootDaemonSocket = (dir = runDir()): string => join(dir, 'root-daemon.sock');
export const userDaemonSocket = (dir = runDir()): string => join(dir, 'user-daemon.sock');
/** The user daemon's port-forward to the traffic manager, which both daemons dial. */
export const managerForwardSocket = (dir = runDir()): string => join(dir, 'manager-forward.sock');
export const daemonLog = (name: 'root-daemon' | 'user-daemon', dir = runDir()): string => join(dir, `${name}.log`);
