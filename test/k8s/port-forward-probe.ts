// Run by test/k8s/port-forward.test.ts inside the control plane's network namespace (the host cannot reach the
// API server). Prints one JSON object per line:
//   locate KUBECONFIG NAMESPACE          → {"target": {...}} or {"error": "..."}
//   http KUBECONFIG NAMESPACE POD PORT   → {"response": "<first line>"} or {"error": "..."} (GET / over a port-forward)
//   session KUBECONFIG NAMESPACE SOCKET  → the user daemon's path: a ManagerForwarder on SOCKET and a TunnelClient
//     through it, reconnecting like the daemons do; {"connected": pod, "version": v} after each connect,
//     {"disconnected": message} on each loss. Runs until killed.
//   userd KUBECONFIG NAMESPACE DIR      → the user daemon's connect in kubeconfig mode, with a mock root daemon on
//     DIR's socket: {"status": SessionStatus JSON, "rootUrl": the URL the root daemon was given, "rootVersion":
//     the manager's version through that URL}, after which it disconnects.

import { mkdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, toJson } from '@bufbuild/protobuf';
import { KubeConfig } from '@kubernetes/client-node';
import { ConnectRequestSchema, NetworkStatusSchema, RootDaemon, SessionStatusSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { rootDaemonSocket } from '../../src/local-paths.js';
import { listenUnixRpc } from '../../src/rpc/unix-socket-rpc.js';
import { UserDaemonService } from '../../src/userd/user-daemon.js';
import { locateManager } from '../../src/k8s/manager-locator.js';
import { openPortForward } from '../../src/k8s/port-forward.js';
import { silentLogger } from '../../src/log/logger.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { ManagerForwarder } from '../../src/userd/manager-forwarder.js';

const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

async function httpGet(config: KubeConfig, namespace: string, pod: string, port: number): Promise<string> {
  const stream = await openPortForward(config, { namespace, pod, port });
  // Not end(): without half-close (v4) it closes the whole port-forward, and the answer with it.
  stream.write('GET / HTTP/1.0\r\nHost: pod\r\n\r\n');
  let text = '';
  for await (const chunk of stream) {
    text += (chunk as Buffer).toString('latin1');
    if (text.includes('\r\n')) break;
  }
  stream.destroy();
  return text.split('\r\n')[0] ?? '';
}

async function session(config: KubeConfig, namespace: string, socket: string): Promise<void> {
  let pod = '';
  const forwarder = await ManagerForwarder.listen(
    socket,
    async () => {
      const target = await locateManager(config, namespace);
      pod = target.pod;
      return openPortForward(config, target);
    },
    silentLogger,
  );
  for (;;) {
    let client: TunnelClient;
    try {
      client = await TunnelClient.connect(forwarder.url);
    } catch (error) {
      print({ retry: forwarder.lastError?.message ?? (error as Error).message });
      await sleep(250);
      continue;
    }
    const lost = new Promise<string>((resolve) => client.once('disconnected', (error) => resolve(error.message)));
    try {
      print({ connected: pod, version: (await client.manager.version({})).version });
    } catch (error) {
      print({ retry: (error as Error).message });
    }
    print({ disconnected: await lost });
  }
}

async function userDaemon(kubeconfig: string, namespace: string, dir: string): Promise<void> {
  let rootUrl = '';
  // The daemons' folder, as the user daemon's start makes it: private to its user.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const root = await listenUnixRpc(
    rootDaemonSocket(dir),
    (router) =>
      router.service(RootDaemon, {
        connect: (request) => {
          rootUrl = request.managerUrl;
          return create(NetworkStatusSchema, { connected: true, tunnel: 'connected' });
        },
        disconnect: () => ({}),
        status: () => create(NetworkStatusSchema, { connected: rootUrl !== '', tunnel: 'connected' }),
        quit: () => ({}),
      }),
    { mode: 0o600 },
  );
  const service = new UserDaemonService(dir, silentLogger, () => undefined);
  try {
    const status = await service.connect(create(ConnectRequestSchema, { kubeconfig, managerNamespace: namespace }));
    // What the root daemon would do with the URL it was given.
    const rootTunnel = await TunnelClient.connect(rootUrl);
    const rootVersion = (await rootTunnel.manager.version({})).version;
    rootTunnel.close();
    print({ status: toJson(SessionStatusSchema, status), rootUrl, rootVersion });
  } finally {
    await service.disconnect();
    root.close();
  }
}

async function main(): Promise<void> {
  const [mode, kubeconfig, namespace, ...rest] = process.argv.slice(2);
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig!);
  try {
    if (mode === 'locate') print({ target: await locateManager(config, namespace) });
    else if (mode === 'http') print({ response: await httpGet(config, namespace!, rest[0]!, Number(rest[1])) });
    else if (mode === 'session') await session(config, namespace!, rest[0]!);
    else if (mode === 'userd') await userDaemon(kubeconfig!, namespace!, rest[0]!);
    else throw new Error(`unknown mode ${mode}`);
  } catch (error) {
    print({ error: (error as Error).message });
  }
}

await main();
