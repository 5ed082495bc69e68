// What a sandbox created, kept on disk (/run/kubetun-sandbox/<name>/state.json) as it is created, so that
// `sandbox down` removes everything also after `up` crashed halfway; and a lock so two commands never work on
// the same sandbox at once.

import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SANDBOX_STATE_ROOT, type SandboxConfig } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';
import type { ProcessRecord } from './processes.js';

export interface SandboxState {
  version: 1;
  name: string;
  createdAt: string;
  updatedAt: string;
  /** Network namespaces created, workstation and node first. */
  namespaces: string[];
  /** /etc/netns/<namespace> folders written (resolv.conf of the namespace). */
  etcNetnsDirs: string[];
  /** Running processes by id (pod name or `upstream-dns`). */
  processes: Record<string, ProcessRecord>;
}

export function stateFilePath(config: SandboxConfig): string {
  return `${config.stateDir}/state.json`;
}

export function emptyState(config: SandboxConfig): SandboxState {
  const now = new Date().toISOString();
  return { version: 1, name: config.name, createdAt: now, updatedAt: now, namespaces: [], etcNetnsDirs: [], processes: {} };
}

/** The recorded state, or null when there is none (never created, removed, or unreadable). */
export function readState(config: SandboxConfig): SandboxState | null {
  let text: string;
  try {
    text = readFileSync(stateFilePath(config), 'utf8');
  } catch {
    return null;
  }
  try {
    const state = JSON.parse(text) as SandboxState;
    if (state.version !== 1 || typeof state.processes !== 'object') return null;
    return state;
  } catch {
    return null;
  }
}

/** Writes the state atomically (a crash leaves the old or the new file, never half of one). */
export function writeState(config: SandboxConfig, state: SandboxState): void {
  const path = stateFilePath(config);
  mkdirSync(dirname(path), { recursive: true });
  state.updatedAt = new Date().toISOString();
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(temporary, path);
}

export function removeStateDir(config: SandboxConfig): void {
  rmSync(config.stateDir, { recursive: true, force: true });
}

function lockPath(config: SandboxConfig): string {
  // Beside the state folder, which `down` deletes while holding the lock.
  return `${SANDBOX_STATE_ROOT}/${config.name}.lock`;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Locks this process holds: a second sandbox call in the same process waits like one from another process.
const heldLocks = new Set<string>();

/** Takes the lock now, or returns the pid holding it; a dead holder's lock is taken over. */
function tryLock(path: string): (() => void) | number {
  if (heldLocks.has(path)) return process.pid;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      heldLocks.add(path);
      return () => {
        heldLocks.delete(path);
        rmSync(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue;
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processExists(holder)) return holder;
    try {
      unlinkSync(path);
    } catch {
      // taken over by someone else meanwhile: try again
    }
  }
  return NaN;
}

const LOCK_POLL_MS = 100;

/**
 * Takes the sandbox's lock (a file holding our pid), waiting up to `waitMs` for another kubetun command working
 * on the same sandbox to finish; returns the function that releases it.
 */
export async function acquireLock(config: SandboxConfig, waitMs = 60_000): Promise<() => void> {
  const path = lockPath(config);
  mkdirSync(dirname(path), { recursive: true });
  const deadline = Date.now() + waitMs;
  while (true) {
    const result = tryLock(path);
    if (typeof result === 'function') return result;
    if (Date.now() >= deadline) {
      const who = Number.isNaN(result) ? 'someone' : `pid ${result}`;
      throw new SandboxError(
        'BUSY',
        `another kubetun sandbox command (${who}) is still working on sandbox ${config.name} after ${Math.round(waitMs / 1000)} s: ` +
          `wait for it, or remove ${path} if no such command runs`,
      );
    }
    await sleep(LOCK_POLL_MS);
  }
}
