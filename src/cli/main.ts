#!/usr/bin/env node
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { runStackDemo } from './stack-demo.js';
import { registerSandboxCommands } from './sandbox-command.js';

function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

const program = new Command();
program.name('kubetun').description('Make a remote Kubernetes cluster local.').version(packageVersion());

program
  .command('version')
  .description('print the client version')
  .action(() => console.log(`kubetun ${packageVersion()}`));

program
  .command('demo')
  .description('show the user-space network stack serving HTTP through a TUN device in a scratch namespace (root)')
  .action(async () => {
    process.exitCode = await runStackDemo();
  });

registerSandboxCommands(program);

await program.parseAsync(process.argv);
