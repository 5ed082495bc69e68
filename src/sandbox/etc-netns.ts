// Per-namespace /etc files: `ip netns exec NAME` bind-mounts /etc/netns/NAME/<file> over /etc/<file>, which is how
// each sandbox namespace gets its own resolv.conf while the host's stays untouched.

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

export const ETC_NETNS = '/etc/netns';

// A namespace name never holds a '/' or starts with '.', so the folder is always directly under /etc/netns.
function folderOf(netns: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns)) throw new Error(`"${netns}" is not a network namespace name`);
  return `${ETC_NETNS}/${netns}`;
}

/** Removes /etc/netns/<netns> if it exists; returns whether it did. */
export function removeNetnsFolder(netns: string): boolean {
  const folder = folderOf(netns);
  if (!existsSync(folder)) return false;
  rmSync(folder, { recursive: true, force: true });
  return true;
}

/** Writes /etc/netns/<netns>/<file>, which `ip netns exec` bind-mounts over /etc/<file>; returns the folder. */
export function writeNetnsEtcFile(netns: string, file: 'resolv.conf' | 'hosts', content: string): string {
  const folder = folderOf(netns);
  mkdirSync(folder, { recursive: true });
  writeFileSync(`${folder}/${file}`, content);
  return folder;
}
