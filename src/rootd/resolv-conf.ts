// A managed resolv.conf for systems without systemd-resolved: kubetun's DNS server first, the cluster's search
// domains before the original ones. The original is saved before the first change in root's state dir
// (/var/lib/kubetun: it survives a reboot), so that a daemon killed with -9 is repaired by the next start and
// `quit` restores it byte for byte — but only while kubetun's marker is still in the file: what DHCP or
// NetworkManager wrote since is theirs, and stays.
//
// Root writes here, so no file is opened through a link: a symlink planted in the state dir is refused, and a
// symlinked /etc/resolv.conf (NetworkManager, resolvconf) is replaced by kubetun's own file, the link put back on
// restore, never written through into the other program's file. A file that is a mount point (a network
// namespace's bind-mounted /etc/resolv.conf) is rewritten in place: it cannot be renamed over.
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, readlink, realpath, rename, rm, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatResolvConf, parseResolvConf, type ResolvConf } from '../dns/resolv-conf.js';
import type { Logger } from '../log/logger.js';

const BACKUP = 'resolv.conf.original';
/** Where /etc/resolv.conf pointed when it was a symlink. */
const LINK_RECORD = 'resolv.conf.link';
const MARKER = 'managed by kubetun while connected; the original is restored on quit';
const MAX_FILE_BYTES = 1 << 20;

export class ResolvConfError extends Error {
  override readonly name = 'ResolvConfError';
  readonly code = 'RESOLV_CONF_UNSAFE';
}

/** What restore() found: kubetun's file put back to the original, the system's own file kept, or no backup. */
export type RestoreOutcome = 'restored' | 'kept-system-file' | 'nothing';

interface CurrentFile {
  text: string;
  /** The link's target when the path is a symlink that is not a mount point. */
  link: string | null;
}

const isManaged = (file: CurrentFile): boolean => file.link === null && file.text.startsWith(`# ${MARKER}\n`);

/** The mount points of this mount namespace (a network namespace's /etc/resolv.conf is one). */
async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  // Field 5 is the mount point, with spaces and the like written as octal escapes.
  return new Set(text.split('\n').map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))));
}

/** Reads a regular file without following a link at `path`; null when it does not exist. */
async function readNoFollow(path: string): Promise<{ text: string; stat: Stats } | null> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new ResolvConfError(`${path} is a symbolic link; kubetun does not follow it: remove it`);
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > MAX_FILE_BYTES) throw new ResolvConfError(`${path} is not a regular file of at most 1 MiB: remove it`);
    return { text: await handle.readFile('utf8'), stat };
  } finally {
    await handle.close();
  }
}

/** Writes `text` to `path`: a new file (never an existing one, never through a link), or in place over a regular file. */
async function writeNoFollow(path: string, text: string, how: 'new' | 'in-place'): Promise<void> {
  const flags = how === 'new' ? constants.O_CREAT | constants.O_EXCL : constants.O_TRUNC;
  const handle = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW | flags, 0o644);
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

export class ManagedResolvConf {
  constructor(
    /** The resolv.conf to manage (/etc/resolv.conf). */
    private readonly path: string,
    /** Root's state dir for this daemon (rootStateDir): created root-owned 0700, holding the backup. */
    private readonly stateDir: string,
    private readonly log?: Logger,
  ) {}

  private get backupPath(): string {
    return join(this.stateDir, BACKUP);
  }

  private get linkRecordPath(): string {
    return join(this.stateDir, LINK_RECORD);
  }

  /**
   * Puts the original back if kubetun's file is still there: on quit, and at start to repair what a daemon killed
   * with -9 left (across a reboot too). A file the system rewrote meanwhile is left as it is; either way the
   * backup is gone afterwards.
   */
  async restore(): Promise<RestoreOutcome> {
    const saved = await this.readState(this.backupPath);
    if (saved === null) return 'nothing';
    const link = await this.readState(this.linkRecordPath);
    const current = await this.current();
    let outcome: RestoreOutcome = 'kept-system-file';
    if (current !== null && isManaged(current)) {
      if (link !== null) await this.replaceWith((tmp) => symlink(link, tmp));
      else await this.writeResolvConf(saved);
      outcome = 'restored';
    } else {
      this.log?.warn(`${this.path} was rewritten by another program while kubetun was connected (kubetun's marker is gone); leaving it as it is and dropping kubetun's stale backup`);
    }
    await rm(this.backupPath, { force: true });
    await rm(this.linkRecordPath, { force: true });
    return outcome;
  }

  /** The configuration as it was before kubetun (the backup if kubetun has changed it). */
  async original(): Promise<ResolvConf> {
    const saved = await this.readState(this.backupPath);
    return parseResolvConf(saved ?? (await readFile(this.path, 'utf8')));
  }

  /** Points the system at `nameserver` with `searchFirst` ahead of the original search list. */
  async apply(nameserver: string, searchFirst: readonly string[]): Promise<void> {
    const current = await this.current();
    if (current === null) throw new ResolvConfError(`${this.path} does not exist; kubetun changes an existing resolv.conf only`);
    let originalText = isManaged(current) ? await this.readState(this.backupPath) : null;
    if (isManaged(current) && originalText === null) {
      throw new ResolvConfError(
        `${this.path} is kubetun's, but the backup of the original is gone from ${this.stateDir}: restore the system's resolv.conf (rerun its DHCP client or network manager) and connect again`,
      );
    }
    // Not kubetun's file (the first apply, or the system rewrote it since): it is the original now.
    if (originalText === null) {
      originalText = current.text;
      await this.saveOriginal(current);
    }
    const base = parseResolvConf(originalText);
    const search = [...searchFirst, ...base.search.filter((s) => !searchFirst.includes(s))];
    const other = base.other.filter((line) => !line.trim().startsWith('#'));
    const managed: ResolvConf = { nameservers: [nameserver], search, options: base.options, other };
    await this.writeResolvConf(formatResolvConf(managed, MARKER), current.link !== null);
  }

  /** The file as it is now; `link` is set for a symlink that is not a mount point. */
  private async current(): Promise<CurrentFile | null> {
    const stat = await lstat(this.path).catch(() => null);
    if (stat === null) return null;
    if (stat.isSymbolicLink()) {
      const text = await readFile(this.path, 'utf8');
      // The link leads to this namespace's own bind-mounted file: that one is rewritten in place.
      if ((await mountPoints()).has(await realpath(this.path))) return { text, link: null };
      return { text, link: await readlink(this.path) };
    }
    const file = await readNoFollow(this.path);
    return file === null ? null : { text: file.text, link: null };
  }

  private async saveOriginal(current: CurrentFile): Promise<void> {
    await this.privateStateDir();
    await rm(this.backupPath, { force: true });
    await rm(this.linkRecordPath, { force: true });
    await writeNoFollow(this.backupPath, current.text, 'new');
    if (current.link !== null) await writeNoFollow(this.linkRecordPath, current.link, 'new');
  }

  /** In place (a regular file, a bind mount, a link to one), or, over a symlink, as a file of kubetun's own. */
  private async writeResolvConf(text: string, replaceLink = false): Promise<void> {
    if (replaceLink) {
      await this.replaceWith((tmp) => writeNoFollow(tmp, text, 'new'));
      return;
    }
    const target = (await lstat(this.path)).isSymbolicLink() ? await realpath(this.path) : this.path;
    await writeNoFollow(target, text, 'in-place');
  }

  /** Makes `path` what `create` makes at a temporary name beside it, in one rename. */
  private async replaceWith(create: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = join(dirname(this.path), '.resolv.conf.kubetun');
    await unlink(tmp).catch(() => undefined);
    await create(tmp);
    await rename(tmp, this.path);
  }

  /** A file of the state dir, read only if it is root's own regular file (no link); null if absent. */
  private async readState(path: string): Promise<string | null> {
    const file = await readNoFollow(path);
    if (file === null) return null;
    if (file.stat.uid !== process.geteuid?.()) throw new ResolvConfError(`${path} is not owned by the root daemon's user: remove it`);
    return file.text;
  }

  /** Creates the state dir 0700; refuses one that is a link, or owned by another user. */
  private async privateStateDir(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    const stat = await lstat(this.stateDir);
    if (!stat.isDirectory() || stat.uid !== process.geteuid?.()) {
      throw new ResolvConfError(`${this.stateDir} must be a directory owned by the root daemon's user (not a link): remove it`);
    }
    if ((stat.mode & 0o077) !== 0) await chmod(this.stateDir, 0o700);
  }
}
