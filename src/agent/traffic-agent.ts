// The traffic agent (`kubetun traffic-agent`), injected beside an app container: it listens on the ports it took
// over, keeps its link to the traffic manager, and applies the intercepts the manager sends. Without the manager
// (or without intercepts) every connection goes to the app, so the pod serves as if the agent were not there.

import type { Server } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { AgentEnvironment } from './agent-environment.js';
import { InterceptTable } from './intercept-table.js';
import { ManagerLink, type ManagerLinkOptions } from './manager-link.js';
import { listenTcpPort, type PortDeps } from './tcp-port.js';
import { UdpPort, type UdpPortOptions } from './udp-port.js';

export interface TrafficAgentOptions {
  link?: ManagerLinkOptions;
  udp?: UdpPortOptions;
  routeHttp?: PortDeps['routeHttp'];
}

export interface TrafficAgent {
  /** Closes the listeners and the link. */
  stop(): Promise<void>;
}

/** Starts listening on every configured port, then connects to the manager (connections are served meanwhile). */
export async function startTrafficAgent(env: AgentEnvironment, log: Logger, options: TrafficAgentOptions = {}): Promise<TrafficAgent> {
  const table = new InterceptTable(env.config.ports);
  const link = new ManagerLink(env, log, options.link);
  link.on('intercepts', (intercepts) => {
    const before = table.interceptIds.join(',');
    for (const { id, reason } of table.apply(intercepts)) log.warn('an intercept cannot be applied', { intercept: id, reason });
    if (table.interceptIds.join(',') === before) return;
    log.info('intercepts changed', {
      intercepts: intercepts.map((i) => ({ id: i.id, mode: i.mode, port: i.containerPort, client: i.client })),
    });
  });
  link.on('lost', () => {
    if (table.interceptIds.length > 0) log.info('intercepts dropped until the traffic manager is back', { count: table.interceptIds.length });
    table.clear();
  });
  const deps: PortDeps = {
    table,
    openAgentStream: (id, source, mirror) => link.openAgentStream(id, source, mirror),
    replaced: env.config.replaced,
    log,
    ...(options.routeHttp ? { routeHttp: options.routeHttp } : {}),
  };
  const servers: Server[] = [];
  const udpPorts: UdpPort[] = [];
  const closeAll = (): void => {
    for (const server of servers) server.close();
    for (const port of udpPorts) port.close();
  };
  try {
    for (const port of env.config.ports) {
      if (port.protocol === 'TCP') servers.push(await listenTcpPort(port, deps));
      else udpPorts.push(await UdpPort.listen(port, deps, options.udp));
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  log.info('the traffic agent listens', {
    ports: env.config.ports.map((p) => `${p.agentPort}→${p.containerPort}/${p.protocol}`),
    workload: `${env.config.kind}/${env.config.workload}`,
  });
  link.start();
  return {
    stop: async () => {
      closeAll();
      await link.stop();
    },
  };
}
