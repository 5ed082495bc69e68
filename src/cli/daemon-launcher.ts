// Starts the daemons on demand, as `kubetun connect` does: the user daemon as the user, the root daemon through
// sudo (directly when already root). Each is detached, logs to its own file, and is ready when its socket answers.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rootDaemonSocket, runDir, userDaemonSocket } from '../local-paths.js';
import { socketAnswers } from '../rpc/unix-socket-rpc.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const START_TIMEOUT_MS = 10_000;

export class DaemonStartError extends Error {
  readonly code = 'DAEMON_START';
}

async function waitForSocket(path: string, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await socketAnswers(path)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new DaemonStartError(`the ${what} did not start within ${START_TIMEOUT_MS / 1000} s; see its log in ${runDir()}`);
}

function startDetached(command: string, args: string[]): void {
  const child = spawn(command, args, { detached: true, stdio: 'ignore', env: process.env });
  child.unref();
}

export async function ensureUserDaemon(): Promise<void> {
  const socket = userDaemonSocket();
  if (await socketAnswers(socket)) return;
  startDetached(process.execPath, [MAIN, 'user-daemon']);
  await waitForSocket(socket, 'user daemon');
}

export async function ensureRootDaemon(): Promise<void> {
  const socket = rootDaemonSocket();
  if (await socketAnswers(socket)) return;
  if (process.getuid?.() === 0) startDetached(process.execPath, [MAIN, 'root-daemon']);
  else startDetached('sudo', ['--preserve-env=KUBETUN_SANDBOX,KUBETUN_RUN_DIR', process.execPath, MAIN, 'root-daemon']);
  await waitForSocket(socket, 'root daemon');
}
