// kubetun list | intercept | replace | wiretap | leave: the cluster's traffic for a workload to this machine.

import { toJson } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { InterceptInfoSchema, WorkloadListSchema, type InterceptInfo } from '../gen/kubetun/manager/v1/manager_pb.js';
import { socketAnswers } from '../rpc/unix-socket-rpc.js';
import { userDaemon, userSocket } from './connect-commands.js';
import { fail } from './daemon-commands.js';
import { writeDotenvFile, writeJsonEnvFile } from './env-files.js';
import { interceptRequest, UsageError, type InterceptCommand, type InterceptOptions } from './intercept-args.js';
import { describeIntercept, formatWorkloads } from './intercept-format.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

interface OutputOption {
  output: string;
}

/** Fails the command: `{"error": …}` on stdout for --output json, else the message on stderr; exit 1. */
function failAs(output: string, error: unknown): never {
  if (output !== 'json') fail(error);
  const message = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  console.log(JSON.stringify({ error: message }));
  process.exit(1);
}

async function connectedDaemon() {
  if (!(await socketAnswers(userSocket()))) throw new UsageError('not connected: run kubetun connect first');
  return userDaemon();
}

function checkOutput(output: string): void {
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output ${output}: text or json`);
}

/** A missing workload or Service names the command that lists them. */
function withHint(error: unknown, namespace: string | undefined): unknown {
  if (!(error instanceof ConnectError) || error.code !== Code.NotFound) return error;
  return new ConnectError(`${error.rawMessage} (kubetun list${namespace === undefined ? '' : ` -n ${namespace}`} shows the workloads)`, error.code);
}

/**
 * Runs `argv` with this environment plus `environment`, stdio inherited; resolves with its exit code (a signal:
 * 128 + its number; not found: 127). Ctrl-C reaches the command through the terminal; kubetun waits for it.
 */
export function runWithEnvironment(argv: readonly string[], environment: Readonly<Record<string, string>>): Promise<number> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...environment } });
  const ignore = (): void => undefined;
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  return new Promise<number>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      console.error(`kubetun: cannot run ${argv[0]}: ${error.code === 'ENOENT' ? 'no such command' : error.message}`);
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  }).finally(() => {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
    process.off('SIGHUP', forward);
  });
}

interface InterceptCommandOptions extends InterceptOptions, OutputOption {
  envFile?: string;
  envJson?: string;
}

function writeEnvironment(info: InterceptInfo, opts: InterceptCommandOptions): void {
  if (opts.envFile !== undefined) {
    const skipped = writeDotenvFile(opts.envFile, info.environment);
    if (skipped.length > 0) console.error(`kubetun: left out of ${opts.envFile} (not shell variable names; --env-json keeps every name): ${skipped.join(', ')}`);
  }
  if (opts.envJson !== undefined) writeJsonEnvFile(opts.envJson, info.environment);
}

async function runIntercept(kind: InterceptCommand, name: string, argv: string[], opts: InterceptCommandOptions): Promise<void> {
  let info: InterceptInfo;
  try {
    checkOutput(opts.output);
    if (argv.length > 0 && !process.argv.includes('--')) throw new UsageError(`put the command to run after --: kubetun ${kind} ${name} --port ${opts.port} -- ${argv.join(' ')}`);
    const request = interceptRequest(kind, name, opts);
    info = await (await connectedDaemon()).intercept(request).catch((error: unknown) => {
      throw withHint(error, opts.namespace);
    });
  } catch (error) {
    failAs(opts.output, error);
  }
  try {
    writeEnvironment(info, opts);
  } catch (error) {
    // The environment was asked for and cannot be had: the intercept is not left running without it.
    await leaveQuietly(info, name);
    failAs(opts.output, new Error(`cannot write the environment (the intercept was left): ${(error as Error).message}`));
  }
  // The environment holds Secret values: only the files (and the command) get it, never stdout.
  if (opts.output === 'json') console.log(JSON.stringify(toJson(InterceptInfoSchema, { ...info, environment: {} }, { alwaysEmitImplicit: true }), null, 2));
  else console.log(describeIntercept(info));
  if (argv.length === 0) return;
  const code = await runWithEnvironment(argv, info.environment);
  await leaveQuietly(info, name);
  process.exit(code);
}

async function leaveQuietly(info: InterceptInfo, name: string): Promise<void> {
  await userDaemon()
    .leave({ workload: info.spec?.workload ?? name, namespace: info.spec?.namespace ?? '' })
    .catch((error: unknown) => console.error(`kubetun: leaving the intercept failed: ${(error as Error).message}`));
}

function interceptCommand(program: Command, kind: InterceptCommand, description: string): Command {
  return program
    .command(`${kind} <name> [command...]`)
    .description(description)
    .requiredOption('--port <local[:service-port]>', 'the local port, and the Service port (number or name) when the Service has several')
    .option('--service <name>', 'the Service whose port to take, when several select the workload')
    .option('-n, --namespace <namespace>', "the workload's namespace (default: the session's)")
    .option('--kind <kind>', 'Deployment (default), StatefulSet or ReplicaSet')
    .option('--env-file <file>', "write the pod's environment here as dotenv (mode 0600)")
    .option('--env-json <file>', "write the pod's environment here as a JSON object (mode 0600)")
    .option('--wait <seconds>', 'how long to wait for the agents (a rollout); default 60')
    .option('-o, --output <format>', 'text or json', 'text');
}

function withHttpFilters(command: Command): Command {
  return command
    .option('--http-header <name=value>', 'only requests with this header value (repeatable)', collect, [])
    .option('--http-header-regex <name=regex>', 'only requests whose header matches (repeatable)', collect, [])
    .option('--http-path-prefix <path>', 'only requests whose path starts so')
    .option('--http-path-equal <path>', 'only requests for this path')
    .option('--http-path-regex <regex>', 'only requests whose path matches');
}

export function registerInterceptCommands(program: Command): void {
  program
    .command('list')
    .description('the workloads you can intercept, why others cannot be, and who intercepts them')
    .option('-n, --namespace <namespace>', "this namespace (default: the session's)")
    .option('-A, --all-namespaces', 'every namespace')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: OutputOption & { namespace?: string; allNamespaces?: boolean }) => {
      try {
        checkOutput(opts.output);
        if (opts.namespace !== undefined && opts.allNamespaces === true) throw new UsageError('give -n NAMESPACE or -A, not both');
        const list = await (await connectedDaemon()).listWorkloads({ namespace: opts.allNamespaces === true ? '*' : (opts.namespace ?? '') });
        console.log(opts.output === 'json' ? JSON.stringify(toJson(WorkloadListSchema, list, { alwaysEmitImplicit: true }), null, 2) : formatWorkloads(list.workloads));
      } catch (error) {
        failAs(opts.output, error);
      }
    });

  const run = (kind: InterceptCommand) => (name: string, argv: string[], opts: InterceptCommandOptions) => runIntercept(kind, name, argv, opts);
  withHttpFilters(interceptCommand(program, 'intercept', 'send the cluster\'s traffic for a workload\'s port here (personal with --http-*, else global); -- CMD runs CMD with its environment')).action(run('intercept'));
  interceptCommand(program, 'replace', "stop the workload's app container and send all its ports here").action(run('replace'));
  withHttpFilters(interceptCommand(program, 'wiretap', 'send a copy of each request here while the pod still answers')).action(run('wiretap'));

  program
    .command('leave <name>')
    .description('end the intercept of a workload: its traffic goes back to its pods')
    .option('-n, --namespace <namespace>', "the workload's namespace (default: the session's)")
    .action(async (name: string, opts: { namespace?: string }) => {
      try {
        await (await connectedDaemon()).leave({ workload: name, namespace: opts.namespace ?? '' });
        console.log(`Left the intercept of ${name}.`);
      } catch (error) {
        fail(error);
      }
    });
}
