#!/usr/bin/env -S node --
// `node --`: Node 20 takes a later --env-file as its own option (kubetun intercept --env-file) and exits when the file does not exist yet.
import { setFlagsFromString } from 'node:v8';
import { Command } from 'commander';
import { kubetunVersion } from '../version.js';

const program = new Command();
program.name('kubetun').description('Make a remote Kubernetes cluster local.').version(kubetunVersion());

program
  .command('demo')
  .description('show the user-space network stack serving HTTP through a TUN device in a scratch namespace (root)')
  .action(async () => {
    const { runStackDemo } = await import('./stack-demo.js');
    process.exitCode = await runStackDemo();
  });

type Registration = () => Promise<(program: Command) => void>;

const REGISTRATIONS: Record<string, Registration> = {
  connect: async () => (await import('./connect-commands.js')).registerConnectCommands,
  install: async () => (await import('./install-command.js')).registerInstallCommands,
  sandbox: async () => (await import('./sandbox-command.js')).registerSandboxCommands,
  manager: async () => (await import('./traffic-manager-command.js')).registerTrafficManagerCommand,
  daemons: async () => (await import('./daemon-commands.js')).registerDaemonCommands,
  agent: async () => (await import('../agent/agent-commands.js')).registerAgentCommands,
  intercept: async () => (await import('./intercept-commands.js')).registerInterceptCommands,
};

// Long-running processes load only the command they run: the others pull in @kubernetes/client-node, about 80 MiB
// of memory a root daemon or a traffic manager in its pod has no use for.
const LONG_RUNNING: Record<string, string> = { 'root-daemon': 'daemons', 'user-daemon': 'daemons', 'traffic-manager': 'manager', 'traffic-agent': 'agent', 'agent-init': 'agent' };
const only = LONG_RUNNING[process.argv[2] ?? ''];
// Code a daemon runs rarely (a new flow, a DNS query, an intercept's dial) stays in V8's interpreter for a long
// while. Sparkplug compiles each function to baseline machine code on its first call instead (no speculation, so
// no deopts; hot code still reaches TurboFan). Measured in the sandbox, the first 50 lookups and connections after
// connect: cold cluster-name lookups 2.2 → 1.6 ms, fresh connections 3.6 → 2.9 ms, for 4–5 MiB more per daemon.
// Set before the command's modules load, so that all their functions are compiled under it.
if (only !== undefined) setFlagsFromString('--always-sparkplug');
for (const name of only === undefined ? Object.keys(REGISTRATIONS) : [only]) (await REGISTRATIONS[name]!())(program);

await program.parseAsync(process.argv);
