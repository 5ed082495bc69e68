// `kubetun sandbox up|down|status|exec`: the sandbox cluster made of network namespaces (see src/sandbox/).

import { Command, Option } from 'commander';
import { ControlPlaneError } from '../sandbox/control-plane/index.js';
import { DEFAULT_SANDBOX_NAME, SandboxError, sandboxDown, sandboxExec, sandboxStatus, sandboxUp } from '../sandbox/index.js';
import { formatDown, formatStatus, formatUp } from '../sandbox/sandbox-report.js';

interface NameOptions {
  name: string;
}

/** Runs a sandbox action; a SandboxError (or the control plane's) becomes one line on stderr and exit status 1. */
async function report(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof SandboxError || error instanceof ControlPlaneError)) throw error;
    console.error(`kubetun sandbox: ${error.message}`);
    process.exitCode = 1;
  }
}

function nameOption(): Option {
  return new Option('--name <name>', 'the sandbox, which prefixes its namespace names').default(DEFAULT_SANDBOX_NAME);
}

export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('a local test cluster: a real Kubernetes control plane, our kubelets, kube-proxy and cluster DNS, in network namespaces (root)');

  sandbox
    .command('up')
    .description('create the sandbox cluster, or repair it, and wait until its nodes and pods are ready')
    .addOption(nameOption())
    .option('--timeout <seconds>', 'how long to wait for the nodes and pods to be ready', '120')
    .action(async (options: NameOptions & { timeout: string }) => {
      await report(async () => {
        const seconds = Number(options.timeout);
        if (!Number.isFinite(seconds) || seconds <= 0) throw new SandboxError('COMMAND_FAILED', `--timeout ${options.timeout} is not a positive number of seconds`);
        const result = await sandboxUp(options.name, { readinessTimeoutMs: seconds * 1000 });
        console.log(formatUp(result));
      });
    });

  sandbox
    .command('down')
    .description('remove the sandbox: its processes, namespaces and files (also after a crash; safe when it is not up)')
    .addOption(nameOption())
    .action(async (options: NameOptions) => {
      await report(async () => console.log(formatDown(await sandboxDown(options.name))));
    });

  sandbox
    .command('status')
    .description('show the nodes, pods, services and health of the sandbox')
    .addOption(nameOption())
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (options: NameOptions & { output: 'text' | 'json' }) => {
      await report(async () => {
        const status = await sandboxStatus(options.name);
        console.log(options.output === 'json' ? JSON.stringify(status, null, 2) : formatStatus(status));
      });
    });

  sandbox
    .command('exec')
    .description('run a command in the workstation namespace, with KUBECONFIG and KUBETUN_SANDBOX set; its exit status is ours')
    .addOption(nameOption())
    .argument('<command...>', 'the command and its arguments, after --')
    .usage('[--name <name>] -- <command> [args...]')
    // `exec curl -sS URL` without the -- works too: options after the command belong to it.
    .allowUnknownOption()
    .action(async (command: string[], options: NameOptions) => {
      await report(async () => {
        process.exitCode = await sandboxExec(options.name, command);
      });
    });
}
