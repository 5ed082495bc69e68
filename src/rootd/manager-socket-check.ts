// The root daemon dials the traffic manager at whatever URL its caller names; a `unix:` one must be the caller's own
// port-forward socket (the user daemon's manager-forward.sock), never a socket of root or of another user.
import { basename, dirname, isAbsolute, normalize } from 'node:path';
import { lstatOrUndefined, managerForwardSocket } from '../local-paths.js';

/**
 * Why `path` is not the manager-forward socket of a private directory of `uid` (undefined when it is): a socket
 * owned by `uid`, named as the user daemon names it, in a directory owned by `uid` with mode 0700, no link on the way.
 */
export function checkManagerSocket(path: string, uid: number): string | undefined {
  if (!isAbsolute(path) || normalize(path) !== path) return 'not an absolute, normalized path';
  const dir = dirname(path);
  if (path !== managerForwardSocket(dir)) return `not a user daemon's ${basename(managerForwardSocket(dir))}`;
  for (let at = dir; at !== '/'; at = dirname(at)) {
    if (lstatOrUndefined(at)?.isSymbolicLink() !== false) return `${at} is missing or a symbolic link`;
  }
  const dirStats = lstatOrUndefined(dir);
  if (dirStats === undefined || !dirStats.isDirectory() || dirStats.uid !== uid || (dirStats.mode & 0o777) !== 0o700) {
    return `${dir} is not a directory of uid ${uid} with mode 700`;
  }
  const socket = lstatOrUndefined(path);
  if (socket === undefined || !socket.isSocket() || socket.uid !== uid) return `not a socket of uid ${uid}`;
  return undefined;
}
