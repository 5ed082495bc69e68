// Throwaway network namespaces for tests: every networking test runs inside one it creates and deletes, so the
// host's own interfaces, routes and resolver are never touched.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';

const IP_TIMEOUT_MS = 10_000;
const EXEC_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 1_000;

let counter = 0;

export interface ExecResult {
  /** The exit code; -1 when the process died of a signal (e.g. the timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

function runIp(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
  });
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class TestNetns {
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(readonly name: string) {}

  /** Creates `kt-${tag}-${pid}-${counter}` with its loopback up. */
  static async create(tag: string): Promise<TestNetns> {
    const name = `kt-${tag}-${process.pid}-${++counter}`;
    await runIp(['netns', 'add', name]);
    const ns = new TestNetns(name);
    try {
      await runIp(['-n', name, 'link', 'set', 'lo', 'up']);
    } catch (error) {
      await ns.destroy();
      throw error;
    }
    return ns;
  }

  /** Runs `ip netns exec NAME cmd args…` to completion (killed after timeoutMs, 10 s by default). */
  exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? EXEC_TIMEOUT_MS);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      // The child may exit before reading its input; that is its business, not an error of the helper.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  }

  /** Starts a long-running `cmd args…` in the namespace; destroy() kills it. */
  spawn(cmd: string, args: string[]): ChildProcess {
    if (this.destroyed) throw new Error(`network namespace ${this.name} is already destroyed`);
    // `ip netns exec` execs the command, so the child's pid is the command's own.
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Kills what spawn() started, then deletes the namespace. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(
      [...this.children].map(async (child) => {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, KILL_GRACE_MS))) {
          child.kill('SIGKILL');
          await waitForExit(child, KILL_GRACE_MS);
        }
      }),
    );
    this.children.clear();
    await runIp(['netns', 'del', this.name]);
  }
}

/** Skips the test, with the reason, unless the process runs as root; returns whether it does. */
export function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  t.skip('needs root: creates network namespaces and TUN devices (run as root or with sudo)');
  return false;
}
