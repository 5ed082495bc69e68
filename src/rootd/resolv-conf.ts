// A managed resolv.conf for systems without systemd-resolved: kubetun's DNS server first, the cluster's search
// domains before the original ones. The original is saved before the first change, next to a marker, so that a
// daemon killed with -9 is repaired by the next start (restoreIfLeftOver) and `quit` restores it byte for byte.
// Files are rewritten in place, not renamed over: in a network namespace /etc/resolv.conf is a bind mount.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatResolvConf, parseResolvConf, type ResolvConf } from '../dns/resolv-conf.js';

const BACKUP = 'resolv.conf.original';

export class ManagedResolvConf {
  constructor(
    /** The resolv.conf to manage (/etc/resolv.conf). */
    private readonly path: string,
    /** A directory private to this root daemon (its state dir), holding the backup. */
    private readonly stateDir: string,
  ) {}

  private get backupPath(): string {
    return join(this.stateDir, BACKUP);
  }

  /**
   * Puts the original back if kubetun changed the file: on quit, and at start to repair what a daemon killed
   * with -9 left. Returns whether there was anything to restore.
   */
  async restore(): Promise<boolean> {
    const original = await readFile(this.backupPath, 'utf8').catch(() => null);
    if (original === null) return false;
    await writeFile(this.path, original);
    await rm(this.backupPath, { force: true });
    return true;
  }

  /** The configuration as it was before kubetun (the backup if kubetun has changed it). */
  async original(): Promise<ResolvConf> {
    const saved = await readFile(this.backupPath, 'utf8').catch(() => null);
    return parseResolvConf(saved ?? (await readFile(this.path, 'utf8')));
  }

  /** Points the system at `nameserver` with `searchFirst` ahead of the original search list. */
  async apply(nameserver: string, searchFirst: readonly string[]): Promise<void> {
    const originalText = await readFile(this.path, 'utf8');
    const hasBackup = await readFile(this.backupPath, 'utf8').then(() => true, () => false);
    const base = hasBackup ? await this.original() : parseResolvConf(originalText);
    if (!hasBackup) await writeFile(this.backupPath, originalText, { mode: 0o600 });
    const search = [...searchFirst, ...base.search.filter((s) => !searchFirst.includes(s))];
    const other = base.other.filter((line) => !line.trim().startsWith('#'));
    const managed: ResolvConf = { nameservers: [nameserver], search, options: base.options, other };
    await writeFile(this.path, formatResolvConf(managed, 'managed by kubetun while connected; the original is restored on quit'));
  }
}
