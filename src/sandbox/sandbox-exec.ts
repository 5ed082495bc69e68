// `sandbox exec`: a command in the sandbox's workstation namespace, with what kubetun needs to find the manager.

import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { requireRoot } from './host-commands.js';
import { existingNetns } from './network.js';
import { sandboxConfig, type SandboxConfig } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';

const KUBETUN_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/**
 * How to run `command` in the sandbox's workstation: `ip netns exec <workstation> …` with the sandbox's env.
 * `kubetun` is this kubetun, whether or not it is installed on the PATH.
 */
export function workstationCommand(
  config: SandboxConfig,
  command: readonly string[],
): { file: string; args: string[]; env: Record<string, string> } {
  const resolved = command[0] === 'kubetun' ? [process.execPath, '--', KUBETUN_MAIN, ...command.slice(1)] : command;
  return {
    file: 'ip',
    args: ['netns', 'exec', config.namespaces.workstation, ...resolved],
    env: { ...config.workstationEnv },
  };
}

/** Runs `command` in the workstation with inherited stdio; resolves to its exit code (128 + signal if killed). */
export async function sandboxExec(name: string, command: readonly string[]): Promise<number> {
  const config = sandboxConfig(name);
  requireRoot('exec');
  if (command.length === 0) throw new SandboxError('COMMAND_FAILED', 'give the command to run after --, e.g. kubetun sandbox exec -- curl http://echo');
  if (!existingNetns().has(config.namespaces.workstation)) {
    throw new SandboxError('NOT_UP', `sandbox ${config.name} is not up (no namespace ${config.namespaces.workstation}): run kubetun sandbox up --name ${config.name}`);
  }
  const { file, args, env } = workstationCommand(config, command);
  const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  // The terminal sends ^C to the whole process group: the command decides what it means, we wait for its exit.
  // A SIGTERM or SIGHUP sent to us alone is passed on.
  const ignore = (): void => {};
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (error) => reject(new SandboxError('COMMAND_FAILED', `cannot run ip netns exec: ${error.message}`)));
      child.once('exit', (code, signal) => {
        if (code !== null) resolve(code);
        else resolve(128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
    process.off('SIGHUP', forward);
  }
}
