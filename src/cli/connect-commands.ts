// kubetun connect | status | quit, and the daemons' own entry points (started by connect, not by users).
import { create, toJson } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import type { Command } from 'commander';
import { accessSync, constants } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { SessionStatusSchema, UserDaemon, type SessionStatus } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { InterceptListSchema, type InterceptList } from '../gen/kubetun/manager/v1/manager_pb.js';
import { KubeConfigError, loadKubeConfig } from '../k8s/kube-client.js';
import { userDaemonSocket, userRunDir } from '../local-paths.js';
import { isLoopbackHost } from '../net/loopback.js';
import { socketAnswers, unixRpcTransport } from '../rpc/unix-socket-rpc.js';
import { kubetunVersion } from '../version.js';
import { fail } from './daemon-commands.js';
import { ensureRootDaemon, ensureUserDaemon } from './daemon-launcher.js';
import { formatIntercepts } from './intercept-format.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The user daemon's socket, in the user's own (checked) directory; a bad directory or sandbox name ends the command. */
export function userSocket(): string {
  try {
    return userDaemonSocket(userRunDir());
  } catch (error) {
    fail(error);
  }
}

export function userDaemon() {
  return createClient(UserDaemon, unixRpcTransport(userSocket()));
}

/** `sudo kubetun connect` works, but runs the user daemon, and so the kubeconfig's exec plugins, as root. */
export function sudoConnectWarning(env: NodeJS.ProcessEnv, uid = process.getuid?.()): string | undefined {
  if (uid !== 0 || env.SUDO_UID === undefined || env.SUDO_UID === '0') return undefined;
  return (
    'kubetun: warning: `sudo kubetun connect` is not needed, and it is less safe: the user daemon now runs as root, so your ' +
    "kubeconfig's exec plugins (cloud login helpers) run as root and its sockets and log belong to root. Run `kubetun quit` " +
    'with sudo, then `kubetun connect` as yourself: kubetun asks sudo only to start the root daemon.'
  );
}


/** How the manager is reached: its URL, or its pod through a port-forward. */
export function describeManager(status: SessionStatus): string {
  if (status.managerUrl !== '') return status.managerUrl;
  return `pod ${status.managerNamespace}/${status.managerPod} via port-forward (context ${status.context})`;
}

export function formatStatus(status: SessionStatus): string {
  if (status.state === 'disconnected') return 'Not connected. Run `kubetun connect`.';
  const net = status.network;
  const lines = [
    `Status:        ${status.state}`,
    `Manager:       ${describeManager(status)} (version ${status.managerVersion || 'unknown'})`,
    `Session:       ${status.sessionId}`,
    `Namespace:     ${status.namespace}`,
    `Pod CIDRs:     ${status.podCidrs.join(', ')}`,
    `Service CIDRs: ${status.serviceCidrs.join(', ')}`,
  ];
  if (net === undefined || !net.connected) {
    lines.push('Network:       not connected (the root daemon is not running or not connected)');
  } else {
    lines.push(
      `Device:        ${net.device} (tunnel ${net.tunnel}, ${net.tunnelConnections} connections carrying flows)`,
      `Routes:        ${net.routes.join(', ')}`,
      `DNS:           ${net.dns?.address} for ${net.dns?.clusterDomain}, search ${net.dns?.searchPath.join(' ')}; ${net.dns?.queries} queries, ${net.dns?.cacheHits} from cache`,
      `Flows:         ${net.flows?.tcpOpened} TCP opened (${net.flows?.tcpActive} active, ${net.flows?.tcpRefused} refused, ${net.flows?.tcpFailed} failed), ${net.flows?.udpFlows} UDP`,
      `Bytes:         ${net.flows?.bytesUp} up, ${net.flows?.bytesDown} down`,
    );
    if (net.routeError) lines.push(`Route error:   ${net.routeError}`);
    if (net.clusterInfoError) lines.push(`Cluster info:  ${net.clusterInfoError}`);
  }
  return lines.join('\n');
}

interface ConnectOptions {
  managerUrl?: string;
  managerCa?: string;
  managerTokenFile?: string;
  kubeconfig?: string;
  context?: string;
  managerNamespace: string;
  managerTimeout: string;
  namespace?: string;
  alsoProxy: string[];
  neverProxy: string[];
  allowConflictingSubnets: string[];
}

export interface ManagerTarget {
  managerUrl: string;
  kubeconfig: string;
  context: string;
  managerNamespace: string;
  managerWaitSeconds: number;
  /** Absolute; only with managerUrl. */
  managerCaFile: string;
  managerTokenFile: string;
}

const MAX_MANAGER_WAIT_S = 600;

/** A manager reached directly speaks TLS; plain h2c only on this machine's loopback (a test, a local forward). */
function checkManagerUrl(url: string): void {
  const parsed = URL.canParse(url) ? new URL(url) : null;
  if (parsed?.protocol === 'https:') return;
  if (parsed?.protocol === 'http:') {
    if (isLoopbackHost(parsed.hostname)) return;
    throw new Error(
      `--manager-url ${url}: a traffic manager reached over the network must be https:// (it authenticates you, and your credentials must not cross the network in plain text); plain http:// only to a loopback address`,
    );
  }
  throw new Error(`--manager-url "${url}" is not an https:// URL of a traffic manager`);
}

/** An absolute path to a file the user can read, or a clear error naming the flag. */
function readableFile(file: string, flag: string): string {
  const path = resolve(file);
  try {
    accessSync(path, constants.R_OK);
  } catch (error) {
    throw new Error(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
  }
  return path;
}

/** The kubeconfig file(s) made absolute for the daemon (which runs elsewhere), after checking they load. */
function kubeconfigFiles(opts: ConnectOptions, env: NodeJS.ProcessEnv, hint: string): string {
  try {
    loadKubeConfig({ kubeconfig: opts.kubeconfig, context: opts.context, env });
  } catch (error) {
    if (error instanceof KubeConfigError) throw new Error(`${error.message} (${hint})`);
    throw error;
  }
  const files = opts.kubeconfig !== undefined ? [opts.kubeconfig] : (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  return files.map((f) => resolve(f)).join(delimiter);
}

/**
 * The URL to reach the manager at, or the kubeconfig to find it with. --manager-url wins; kubeconfig flags win over
 * $KUBETUN_MANAGER_URL; the kubeconfig is checked here so that a missing file or unknown context is reported before
 * any daemon starts. A manager reached by URL authenticates the user with --manager-token-file, else with the
 * kubeconfig user's credentials (--kubeconfig and --context choose them). Throws.
 */
export function managerTarget(opts: ConnectOptions, given: ReadonlySet<'managerNamespace' | 'managerTimeout'>, env: NodeJS.ProcessEnv): ManagerTarget {
  const kubeFlags = opts.kubeconfig !== undefined || opts.context !== undefined || given.size > 0;
  if (opts.managerUrl !== undefined && given.size > 0) {
    throw new Error('--manager-url reaches the traffic manager directly: it cannot be combined with --manager-namespace or --manager-timeout');
  }
  const managerUrl = opts.managerUrl ?? (kubeFlags ? undefined : env.KUBETUN_MANAGER_URL) ?? '';
  if (managerUrl === '' && (opts.managerCa !== undefined || opts.managerTokenFile !== undefined)) {
    throw new Error('--manager-ca and --manager-token-file are for a traffic manager reached directly: give --manager-url too');
  }
  if (managerUrl !== '') {
    checkManagerUrl(managerUrl);
    const managerCaFile = opts.managerCa === undefined ? '' : readableFile(opts.managerCa, '--manager-ca');
    const managerTokenFile = opts.managerTokenFile === undefined ? '' : readableFile(opts.managerTokenFile, '--manager-token-file');
    if (managerTokenFile !== '' && (opts.kubeconfig !== undefined || opts.context !== undefined)) {
      throw new Error('--manager-token-file is the credential: it cannot be combined with --kubeconfig or --context');
    }
    // Over https the kubeconfig user's credentials are sent unless a token file is; plain loopback h2c needs none.
    const kubeconfig = managerTokenFile === '' && managerUrl.startsWith('https:') ? kubeconfigFiles(opts, env, 'its user authenticates you to the traffic manager; or pass --manager-token-file') : '';
    return { managerUrl, kubeconfig, context: opts.context ?? '', managerNamespace: '', managerWaitSeconds: 0, managerCaFile, managerTokenFile };
  }
  const managerWaitSeconds = Number(opts.managerTimeout);
  if (!/^[0-9]+$/.test(opts.managerTimeout) || managerWaitSeconds > MAX_MANAGER_WAIT_S) {
    throw new Error(`--manager-timeout takes whole seconds from 0 to ${MAX_MANAGER_WAIT_S}, not "${opts.managerTimeout}"`);
  }
  return {
    managerUrl: '',
    kubeconfig: kubeconfigFiles(opts, env, 'or pass --manager-url to reach a traffic manager directly'),
    context: opts.context ?? '',
    managerNamespace: opts.managerNamespace,
    managerWaitSeconds,
    managerCaFile: '',
    managerTokenFile: '',
  };
}

export function registerConnectCommands(program: Command): void {
  program
    .command('version')
    .description('print the versions of the client, the user daemon and the traffic manager (when connected)')
    .action(async () => {
      console.log(`Client:          kubetun ${kubetunVersion()}`);
      if (!(await socketAnswers(userSocket()))) {
        console.log('User daemon:     not running');
        return;
      }
      try {
        const daemon = userDaemon();
        console.log(`User daemon:     kubetun ${(await daemon.version({})).version}`);
        const status = await daemon.status({});
        console.log(`Traffic manager: ${status.state === 'disconnected' ? 'not connected' : status.managerVersion}`);
      } catch (error) {
        fail(error);
      }
    });

  program
    .command('connect')
    .description('connect this machine to the cluster: its pods and services by IP and by DNS name')
    .option('--manager-url <url>', "a traffic manager reachable directly, https:// (default: $KUBETUN_MANAGER_URL; without either, it is found through the kubeconfig); you are authenticated with the kubeconfig user's credentials")
    .option('--manager-ca <file>', "with --manager-url: trust the manager's certificate when this CA (PEM) signed it")
    .option('--manager-token-file <file>', 'with --manager-url: authenticate with the shared token in this file (a manager run with --client-token-file)')
    .option('--kubeconfig <file>', 'the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context (default: its current context)')
    .option('--manager-namespace <namespace>', 'where the traffic manager is installed', 'kubetun')
    .option('--manager-timeout <seconds>', 'how long to wait for a ready traffic manager pod (during a rollout, say)', '30')
    .option('-n, --namespace <namespace>', "the namespace short names resolve in (default: the context's namespace, else default)")
    .option('--also-proxy <cidr>', 'also route this subnet into the cluster (repeatable)', collect, [])
    .option('--never-proxy <cidr>', 'never route this subnet into the cluster (repeatable)', collect, [])
    .option('--allow-conflicting-subnets <cidr>', 'route this cluster subnet even where a local route overlaps it (repeatable)', collect, [])
    .action(async (opts: ConnectOptions, command: Command) => {
      let target: ManagerTarget;
      try {
        const given = new Set((['managerNamespace', 'managerTimeout'] as const).filter((o) => command.getOptionValueSource(o) === 'cli'));
        target = managerTarget(opts, given, process.env);
      } catch (error) {
        fail(error);
      }
      const warning = sudoConnectWarning(process.env);
      if (warning !== undefined) console.error(warning);
      try {
        await ensureRootDaemon();
        await ensureUserDaemon();
        const status = await userDaemon().connect({
          ...target,
          namespace: opts.namespace ?? '',
          policy: { alsoProxy: opts.alsoProxy, neverProxy: opts.neverProxy, allowConflicting: opts.allowConflictingSubnets },
        });
        console.log(`Connected to the traffic manager ${describeManager(status)} (namespace ${status.namespace}, ${status.state}).`);
        console.log(`Routing ${status.network?.routes.join(', ') ?? 'nothing'}; cluster DNS through ${status.network?.dns?.address ?? '?'}.`);
      } catch (error) {
        fail(error);
      }
    });

  program
    .command('status')
    .description('show the connection, routes, DNS, flow counters and intercepts')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { output: string }) => {
      let status: SessionStatus;
      let intercepts: InterceptList = create(InterceptListSchema);
      if (!(await socketAnswers(userSocket()))) {
        status = create(SessionStatusSchema, { state: 'disconnected' });
      } else {
        try {
          status = await userDaemon().status({});
          if (status.state !== 'disconnected') intercepts = await userDaemon().listIntercepts({});
        } catch (error) {
          fail(error);
        }
      }
      if (opts.output === 'json') {
        const list = toJson(InterceptListSchema, intercepts, { alwaysEmitImplicit: true }) as { intercepts: unknown[] };
        const json = { ...(toJson(SessionStatusSchema, status, { alwaysEmitImplicit: true }) as object), intercepts: list.intercepts };
        console.log(JSON.stringify(json, null, 2));
      } else {
        console.log(status.state === 'disconnected' ? formatStatus(status) : `${formatStatus(status)}\n${formatIntercepts(intercepts.intercepts)}`);
      }
    });

  program
    .command('quit')
    .description('disconnect and stop both daemons; routes, DNS and the device are removed')
    .action(async () => {
      if (!(await socketAnswers(userSocket()))) {
        console.log('kubetun is not running.');
        return;
      }
      try {
        await userDaemon().quit({});
        console.log('Disconnected; daemons stopped.');
      } catch (error) {
        fail(error);
      }
    });
}
