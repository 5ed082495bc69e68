// The hidden commands the daemon launcher starts: `kubetun root-daemon` and `kubetun user-daemon`. Each loads only
// its own daemon's code, when it runs.

import { ConnectError } from '@connectrpc/connect';
import type { Command } from 'commander';
import { checkSandboxName } from '../local-paths.js';

/** Prints the error's message (a daemon's own, for RPC errors) and exits 1. */
export function fail(error: unknown): never {
  const message = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  console.error(`kubetun: ${message}`);
  process.exit(1);
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('root-daemon', { hidden: true })
    .option('--sandbox <name>', 'serve this sandbox workstation')
    .option('--daemonize', 'start the daemon detached and return once it answers')
    .action(async (opts: { sandbox?: string; daemonize?: boolean }) => {
      try {
        if (process.getuid?.() !== 0) throw new Error('the root daemon must run as root: `kubetun connect` starts it through sudo');
        const sandbox = checkSandboxName(opts.sandbox, '--sandbox');
        if (opts.daemonize === true) {
          const { daemonizeRootDaemon } = await import('./daemon-launcher.js');
          await daemonizeRootDaemon(sandbox);
          return;
        }
        const { defaultRootDaemonOptions, runRootDaemon } = await import('../rootd/root-daemon.js');
        await runRootDaemon(defaultRootDaemonOptions(sandbox));
      } catch (error) {
        fail(error);
      }
    });
  program.command('user-daemon', { hidden: true }).action(async () => {
    try {
      const { runUserDaemon } = await import('../userd/user-daemon.js');
      await runUserDaemon();
    } catch (error) {
      fail(error);
    }
  });
}
