// Where the local daemons keep their sockets, logs and state. The user daemon runs as the user, in a directory
// only that user can enter; the root daemon in a root-owned one that no variable of the caller can move. A sandbox
// workstation gets its own folder below each: the network namespaces share the host's /run and /tmp, and two root
// daemons must never share a socket or a resolv.conf backup.
import { chmodSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';

export class LocalPathError extends Error {
  readonly code = 'LOCAL_PATH';
}

// A sandbox name becomes part of paths root writes: letters, digits and '-' only, so no '/' or '..' gets in.
const SANDBOX_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** `name` when it is a plain sandbox name (undefined stays undefined); throws naming `source` otherwise. */
export function checkSandboxName(name: string | undefined, source = 'KUBETUN_SANDBOX'): string | undefined {
  if (name === undefined || name === '') return undefined;
  if (!SANDBOX_NAME.test(name)) {
    throw new LocalPathError(
      `${source} "${name}" is not a sandbox name: use up to 32 lower-case letters, digits and '-' (as given to kubetun sandbox up)`,
    );
  }
  return name;
}

/** The sandbox named by KUBETUN_SANDBOX (undefined when unset), refused unless it is a plain name. */
export const sandboxName = (env: NodeJS.ProcessEnv = process.env): string | undefined => checkSandboxName(env.KUBETUN_SANDBOX);

const underSandbox = (base: string, sandbox: string | undefined): string => (sandbox === undefined ? base : join(base, `sandbox-${sandbox}`));

/** What root keeps across a reboot (the resolv.conf backup): /var/lib/kubetun, per sandbox below it. */
export const rootStateDir = (sandbox: string | undefined): string => underSandbox('/var/lib/kubetun', sandbox);

/** The root daemon's socket and log: /run/kubetun, per sandbox below it. Root-owned, 0755. */
export const rootRunDir = (sandbox: string | undefined): string => underSandbox('/run/kubetun', sandbox);

const ownUid = (): number => process.getuid?.() ?? 0;

/** Where a user daemon of `uid` runs without KUBETUN_RUN_DIR, with the usual XDG_RUNTIME_DIR or none. */
const userRunDirCandidates = (uid: number, sandbox: string | undefined): string[] => [
  underSandbox(join('/run/user', String(uid), 'kubetun'), sandbox),
  underSandbox(`/tmp/kubetun-${uid}`, sandbox),
];

/**
 * Every user daemon directory of `sandbox` on this machine (each owned by the uid its path names, no link): how
 * root finds the user daemons to stop when the sandbox goes away. A directory under another XDG_RUNTIME_DIR or
 * KUBETUN_RUN_DIR is not found.
 */
export function sandboxUserRunDirs(sandbox: string): string[] {
  const uids = new Set<number>();
  for (const [parent, pattern] of [['/tmp', /^kubetun-([0-9]+)$/], ['/run/user', /^([0-9]+)$/]] as const) {
    let names: string[];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const name of names) {
      const uid = pattern.exec(name)?.[1];
      if (uid !== undefined) uids.add(Number(uid));
    }
  }
  return [...uids].flatMap((uid) =>
    userRunDirCandidates(uid, sandbox).filter((dir) => {
      const stats = lstatOrUndefined(dir);
      return stats !== undefined && stats.isDirectory() && stats.uid === uid;
    }),
  );
}

/** lstat, or undefined when there is nothing (or nothing visible) at `path`. */
export function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** XDG_RUNTIME_DIR when it is a real directory of this user that others cannot write to. */
function ownRuntimeDir(env: NodeJS.ProcessEnv, uid: number): string | undefined {
  const dir = env.XDG_RUNTIME_DIR;
  if (dir === undefined || !dir.startsWith('/')) return undefined;
  const stats = lstatOrUndefined(dir);
  return stats !== undefined && stats.isDirectory() && stats.uid === uid && (stats.mode & 0o022) === 0 ? dir : undefined;
}

/**
 * The user daemon's directory (its sockets and log), not created: KUBETUN_RUN_DIR as given, else
 * $XDG_RUNTIME_DIR/kubetun when XDG_RUNTIME_DIR is the user's own, else /tmp/kubetun-<uid>; a sandbox's below it.
 */
export function userRunDirPath(env: NodeJS.ProcessEnv = process.env, uid = ownUid()): string {
  if (env.KUBETUN_RUN_DIR) return env.KUBETUN_RUN_DIR;
  const runtime = ownRuntimeDir(env, uid);
  return underSandbox(runtime === undefined ? `/tmp/kubetun-${uid}` : join(runtime, 'kubetun'), sandboxName(env));
}

/**
 * Makes `dir` (its parent must exist) with `mode`, or checks the one there: a directory, not a link, owned by
 * `uid`, with exactly `mode` — so that a directory someone else prepared (in /tmp, say) is never used.
 */
export function ensureOwnedDir(dir: string, uid: number, mode: number): void {
  try {
    mkdirSync(dir, { mode });
    // Ours, just made: the umask must not change its mode.
    chmodSync(dir, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new LocalPathError(`cannot create ${dir}: ${(error as Error).message}`);
    }
  }
  const stats = lstatSync(dir);
  const problem = stats.isSymbolicLink()
    ? 'is a symbolic link'
    : !stats.isDirectory()
      ? 'is not a directory'
      : stats.uid !== uid
        ? `belongs to uid ${stats.uid}, not ${uid}`
        : (stats.mode & 0o777) !== mode
          ? `has mode ${(stats.mode & 0o777).toString(8)}, not ${mode.toString(8)}`
          : undefined;
  if (problem !== undefined) {
    throw new LocalPathError(`${dir} ${problem}: kubetun will not use it, since someone else may control it; remove it and run kubetun again`);
  }
}

/** `dir` and, for a sandbox's, the directory above it, made or checked (ensureOwnedDir). */
function ensureRunDir(dir: string, sandbox: string | undefined, uid: number, mode: number): string {
  if (sandbox !== undefined) ensureOwnedDir(dirname(dir), uid, mode);
  ensureOwnedDir(dir, uid, mode);
  return dir;
}

/** The user daemon's directory, made (0700) or checked: see userRunDirPath and ensureOwnedDir. */
export function userRunDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = ownUid();
  return ensureRunDir(userRunDirPath(env, uid), env.KUBETUN_RUN_DIR ? undefined : sandboxName(env), uid, 0o700);
}

/** The root daemon's directory, made (root-owned, 0755) or checked: see rootRunDir and ensureOwnedDir. */
export const ensureRootRunDir = (sandbox: string | undefined): string => ensureRunDir(rootRunDir(sandbox), sandbox, 0, 0o755);

export const rootDaemonSocket = (dir: string): string => join(dir, 'root-daemon.sock');
export const userDaemonSocket = (dir: string): string => join(dir, 'user-daemon.sock');
/** The user daemon's port-forward to the traffic manager, which both daemons dial. */
export const managerForwardSocket = (dir: string): string => join(dir, 'manager-forward.sock');
export const daemonLog = (name: 'root-daemon' | 'user-daemon', dir: string): string => join(dir, `${name}.log`);
