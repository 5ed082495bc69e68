// kubetun connect | status | quit, and the daemons' own entry points (started by connect, not by users).
import { toJson } from '@bufbuild/protobuf';
import { ConnectError, createClient } from '@connectrpc/connect';
import type { Command } from 'commander';
import { SessionStatusSchema, UserDaemon, type SessionStatus } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { userDaemonSocket } from '../local-paths.js';
import { defaultRootDaemonOptions, runRootDaemon } from '../rootd/root-daemon.js';
import { socketAnswers, unixRpcTransport } from '../rpc/unix-socket-rpc.js';
import { runUserDaemon } from '../userd/user-daemon.js';
import { kubetunVersion } from '../version.js';
import { ensureRootDaemon, ensureUserDaemon } from './daemon-launcher.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function userDaemon() {
  return createClient(UserDaemon, unixRpcTransport(userDaemonSocket()));
}

function fail(error: unknown): never {
  const message = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  console.error(`kubetun: ${message}`);
  process.exit(1);
}

export function formatStatus(status: SessionStatus): string {
  if (status.state === 'disconnected') return 'Not connected. Run `kubetun connect`.';
  const net = status.network;
  const lines = [
    `Status:        ${status.state}`,
    `Manager:       ${status.managerUrl} (version ${status.managerVersion || 'unknown'})`,
    `Session:       ${status.sessionId}`,
    `Namespace:     ${status.namespace}`,
    `Pod CIDRs:     ${status.podCidrs.join(', ')}`,
    `Service CIDRs: ${status.serviceCidrs.join(', ')}`,
  ];
  if (net === undefined || !net.connected) {
    lines.push('Network:       not connected (the root daemon is not running or not connected)');
  } else {
    lines.push(
      `Device:        ${net.device} (tunnel ${net.tunnel})`,
      `Routes:        ${net.routes.join(', ')}`,
      `DNS:           ${net.dns?.address} for ${net.dns?.clusterDomain}, search ${net.dns?.searchPath.join(' ')}; ${net.dns?.queries} queries, ${net.dns?.cacheHits} from cache`,
      `Flows:         ${net.flows?.tcpOpened} TCP opened (${net.flows?.tcpActive} active, ${net.flows?.tcpRefused} refused, ${net.flows?.tcpFailed} failed), ${net.flows?.udpFlows} UDP`,
      `Bytes:         ${net.flows?.bytesUp} up, ${net.flows?.bytesDown} down`,
    );
    if (net.routeError) lines.push(`Route error:   ${net.routeError}`);
  }
  return lines.join('\n');
}

export function registerConnectCommands(program: Command): void {
  program
    .command('version')
    .description('print the versions of the client, the user daemon and the traffic manager (when connected)')
    .action(async () => {
      console.log(`Client:          kubetun ${kubetunVersion()}`);
      if (!(await socketAnswers(userDaemonSocket()))) {
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
    .option('--manager-url <url>', 'the traffic manager (default: $KUBETUN_MANAGER_URL)')
    .option('-n, --namespace <namespace>', 'the namespace short names resolve in', 'default')
    .option('--also-proxy <cidr>', 'also route this subnet into the cluster (repeatable)', collect, [])
    .option('--never-proxy <cidr>', 'never route this subnet into the cluster (repeatable)', collect, [])
    .option('--allow-conflicting-subnets <cidr>', 'route this cluster subnet even where a local route overlaps it (repeatable)', collect, [])
    .action(async (opts: { managerUrl?: string; namespace: string; alsoProxy: string[]; neverProxy: string[]; allowConflictingSubnets: string[] }) => {
      const managerUrl = opts.managerUrl ?? process.env.KUBETUN_MANAGER_URL;
      if (managerUrl === undefined || managerUrl === '') {
        fail(new Error('no traffic manager given: pass --manager-url URL or set KUBETUN_MANAGER_URL (inside the sandbox, use `kubetun sandbox exec -- kubetun connect`)'));
      }
      try {
        await ensureRootDaemon();
        await ensureUserDaemon();
        const status = await userDaemon().connect({
          managerUrl,
          namespace: opts.namespace,
          policy: { alsoProxy: opts.alsoProxy, neverProxy: opts.neverProxy, allowConflicting: opts.allowConflictingSubnets },
        });
        console.log(`Connected to ${status.managerUrl} (namespace ${status.namespace}).`);
        console.log(`Routing ${status.network?.routes.join(', ') ?? 'nothing'}; cluster DNS through ${status.network?.dns?.address ?? '?'}.`);
      } catch (error) {
        fail(error);
      }
    });

  program
    .command('status')
    .description('show the connection, routes, DNS and flow counters')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { output: string }) => {
      let status: SessionStatus;
      if (!(await socketAnswers(userDaemonSocket()))) {
        status = { state: 'disconnected' } as SessionStatus;
      } else {
        try {
          status = await userDaemon().status({});
        } catch (error) {
          fail(error);
        }
      }
      if (opts.output === 'json') console.log(JSON.stringify(toJson(SessionStatusSchema, status, { alwaysEmitImplicit: true }), null, 2));
      else console.log(formatStatus(status));
    });

  program
    .command('quit')
    .description('disconnect and stop both daemons; routes, DNS and the device are removed')
    .action(async () => {
      if (!(await socketAnswers(userDaemonSocket()))) {
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

  program.command('root-daemon', { hidden: true }).action(async () => {
    try {
      await runRootDaemon(defaultRootDaemonOptions());
    } catch (error) {
      fail(error);
    }
  });
  program.command('user-daemon', { hidden: true }).action(async () => {
    try {
      await runUserDaemon();
    } catch (error) {
      fail(error);
    }
  });
}
