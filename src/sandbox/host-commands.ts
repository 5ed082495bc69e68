// Running the tools the sandbox is built with (ip, nft, sysctl…): no shell, bounded time, failures carrying the
// command line and its stderr. Also the check that every tool is installed, naming the Debian package if not.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SandboxError } from './sandbox-errors.js';

const COMMAND_TIMEOUT_MS = 15_000;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  timeoutMs?: number;
  /** Return the result of a failed command instead of throwing. */
  allowFailure?: boolean;
}

export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const line = [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? COMMAND_TIMEOUT_MS, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const errno = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
        if (errno.code === 'ENOENT') {
          reject(new SandboxError('MISSING_BINARY', `cannot run ${file}: it is not installed (${packageHint(file)})`));
          return;
        }
        const code = typeof errno.code === 'number' ? errno.code : -1;
        if (options.allowFailure === true && errno.killed !== true) {
          resolve({ code, stdout, stderr });
          return;
        }
        const detail = errno.killed === true ? 'timed out' : stderr.trim() || error.message;
        reject(new SandboxError('COMMAND_FAILED', `${line} failed: ${detail}`));
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/** Runs `ip netns exec NETNS file args…`. */
export function runInNetns(netns: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return runCommand('ip', ['netns', 'exec', netns, file, ...args], options);
}

/** The binaries `sandbox up` needs, with the Debian package that has each. */
export const REQUIRED_BINARIES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  nft: 'nftables',
  sysctl: 'procps',
  dnsmasq: 'dnsmasq-base',
  'redis-server': 'redis-server',
  iperf3: 'iperf3',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  openssl: 'openssl',
};

function packageHint(binary: string): string {
  const pkg = REQUIRED_BINARIES[binary];
  return pkg === undefined ? 'install it' : `apt-get install ${pkg}`;
}

/** The full path of `binary` on PATH (plus the sbin folders, which a user's PATH may lack), or null. */
export function findBinary(binary: string, path = process.env.PATH ?? ''): string | null {
  const dirs = [...path.split(delimiter).filter((d) => d !== ''), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return null;
}

/** Throws SandboxError MISSING_BINARY naming each missing binary and its Debian package. */
export function checkBinaries(find: (binary: string) => string | null = findBinary): void {
  const missing = Object.entries(REQUIRED_BINARIES).filter(([binary]) => find(binary) === null);
  if (missing.length === 0) return;
  const names = missing.map(([binary, pkg]) => `${binary} (Debian package ${pkg})`).join(', ');
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  throw new SandboxError('MISSING_BINARY', `the sandbox needs ${names}: install with apt-get install ${packages}, or run npm run setup`);
}

/** Throws SandboxError NOT_ROOT unless this process runs as root. */
export function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) {
    throw new SandboxError(
      'NOT_ROOT',
      `kubetun sandbox ${command} needs root: it creates network namespaces and nftables rules. Run it with sudo.`,
    );
  }
}
