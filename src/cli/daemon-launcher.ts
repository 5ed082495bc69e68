// Starts the daemons on demand, as `kubetun connect` does: the user daemon as the user, detached, in the user's own
// directory; the root daemon through sudo, attached to the terminal so that sudo can ask for the password (without
// a terminal, `sudo -n`, and a clear error when sudo wants a password). Through sudo the root daemon is told only
// the sandbox name, as an argument: no variable of the caller reaches it. `root-daemon --daemonize` (root by then)
// starts the detached daemon and returns once its socket answers. A daemon is ready when its socket answers.
import { spawn, type StdioOptions } from 'node:child_process';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { daemonLog, rootDaemonSocket, rootRunDir, sandboxName, userDaemonSocket, userRunDir } from '../local-paths.js';
import { socketAnswers } from '../rpc/unix-socket-rpc.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const START_TIMEOUT_MS = 10_000;

export class DaemonStartError extends Error {
  readonly code = 'DAEMON_START';
}

async function waitForSocket(path: string, what: string, log: string, exited: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline && !exited()) {
    if (await socketAnswers(path)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const why = exited() ? 'exited before it answered' : `did not start within ${START_TIMEOUT_MS / 1000} s`;
  throw new DaemonStartError(`the ${what} ${why}; see its log in ${log}`);
}

export async function ensureUserDaemon(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const dir = userRunDir(env);
  const socket = userDaemonSocket(dir);
  if (await socketAnswers(socket)) return;
  const child = spawn(process.execPath, [MAIN, 'user-daemon'], { detached: true, stdio: 'ignore', env });
  child.unref();
  await waitForSocket(socket, 'user daemon', daemonLog('user-daemon', dir));
}

/** The command sudo runs: what a sudoers rule must name exactly. */
export function rootDaemonCommand(sandbox: string | undefined): string[] {
  return [process.execPath, MAIN, 'root-daemon', '--daemonize', ...(sandbox === undefined ? [] : ['--sandbox', sandbox])];
}

/** The sudoers line that lets this user start the root daemon without a password, and nothing else. */
export const sudoersRule = (user: string, sandbox: string | undefined): string => `${user} ALL=(root) NOPASSWD: ${rootDaemonCommand(sandbox).join(' ')}`;

interface Finished {
  code: number | null;
  stderr: string;
}

function run(command: string, args: string[], stdio: StdioOptions): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (error) =>
      reject(new DaemonStartError(`cannot run ${command}: ${error.message}${command === 'sudo' ? ' (the root daemon is started through sudo: install it)' : ''}`)),
    );
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

function sudoFailure(result: Finished, sandbox: string | undefined): DaemonStartError {
  const said = result.stderr.trim();
  if (/password is required|not allowed to|not in the sudoers/i.test(said)) {
    return new DaemonStartError(
      `the root daemon needs sudo, and sudo asked for a password with no terminal to ask on (${said}). Either run \`kubetun connect\` once in a terminal (sudo asks, then remembers for a while), or let this command run without a password with a sudoers rule (visudo -f /etc/sudoers.d/kubetun):\n  ${sudoersRule(userInfo().username, sandbox)}`,
    );
  }
  return new DaemonStartError(`starting the root daemon through sudo failed (exit code ${result.code}): ${said || 'no message'}`);
}

export async function ensureRootDaemon(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const sandbox = sandboxName(env);
  const socket = rootDaemonSocket(rootRunDir(sandbox));
  if (await socketAnswers(socket)) return;
  // Root starts it itself, as `root-daemon --daemonize` does after sudo.
  if (process.getuid?.() === 0) {
    await daemonizeRootDaemon(sandbox);
    return;
  }
  const [node, ...args] = rootDaemonCommand(sandbox) as [string, ...string[]];
  const log = daemonLog('root-daemon', rootRunDir(sandbox));
  if (process.stdin.isTTY) {
    // sudo reads the password from the terminal and prints its own prompt and errors there.
    const result = await run('sudo', [node, ...args], 'inherit');
    if (result.code !== 0) {
      throw new DaemonStartError(`the root daemon did not start through sudo (exit code ${result.code}): see sudo's messages above, or the daemon's log in ${log}`);
    }
  } else {
    const result = await run('sudo', ['-n', node, ...args], ['ignore', 'inherit', 'pipe']);
    if (result.code !== 0) throw sudoFailure(result, sandbox);
  }
  if (!(await socketAnswers(socket))) throw new DaemonStartError(`the root daemon started, but its socket ${socket} does not answer this user`);
}

/** `root-daemon --daemonize`, run as root: starts the daemon detached and waits until its socket answers. */
export async function daemonizeRootDaemon(sandbox: string | undefined): Promise<void> {
  const dir = rootRunDir(sandbox);
  const socket = rootDaemonSocket(dir);
  if (await socketAnswers(socket)) return;
  let exited = false;
  const child = spawn(process.execPath, [MAIN, 'root-daemon', ...(sandbox === undefined ? [] : ['--sandbox', sandbox])], { detached: true, stdio: 'ignore' });
  child.once('exit', () => (exited = true));
  child.unref();
  await waitForSocket(socket, 'root daemon', daemonLog('root-daemon', dir), () => exited);
}
