#!/usr/bin/env node
import { Command } from 'commander';
import { kubetunVersion } from '../version.js';
import { registerConnectCommands } from './connect-commands.js';
import { registerInstallCommands } from './install-command.js';
import { runStackDemo } from './stack-demo.js';
import { registerSandboxCommands } from './sandbox-command.js';
import { registerTrafficManagerCommand } from './traffic-manager-command.js';

const program = new Command();
program.name('kubetun').description('Make a remote Kubernetes cluster local.').version(kubetunVersion());


program
  .command('demo')
  .description('show the user-space network stack serving HTTP through a TUN device in a scratch namespace (root)')
  .action(async () => {
    process.exitCode = await runStackDemo();
  });

registerConnectCommands(program);
registerInstallCommands(program);
registerSandboxCommands(program);
registerTrafficManagerCommand(program);

await program.parseAsync(process.argv);
