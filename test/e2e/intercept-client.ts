// A second intercepting client for the intercept e2e test: its own session at the traffic manager (reached through
// the first client's port-forward socket, given as argv[2]) and a personal intercept served by the user daemon's
// own intercept code, dialing localhost:PORT. Prints one JSON line when the intercept is active, then serves until
// SIGTERM, when it departs.
//
//   node intercept-client.js unix:/path/manager-forward.sock WORKLOAD PORT HEADER=VALUE
import { create } from '@bufbuild/protobuf';
import { InterceptRequestSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { InterceptRegistry } from '../../src/userd/intercepts.js';

const [url, workload, port, header] = process.argv.slice(2);
if (url === undefined || workload === undefined || port === undefined || header?.includes('=') !== true) {
  throw new Error('usage: intercept-client.js MANAGER_URL WORKLOAD PORT HEADER=VALUE');
}
const tunnel = await TunnelClient.connect(url);
const session = await tunnel.manager.arriveAsClient({ name: 'second@e2e', namespace: 'default', hostname: 'e2e', version: '0' });
tunnel.sessionId = session.id;
setInterval(() => void tunnel.manager.remain({ id: session.id }).catch(() => undefined), 5_000);
process.once('SIGTERM', () => {
  void tunnel.manager.depart({ id: session.id }).finally(() => process.exit(0));
});
const registry = new InterceptRegistry(() => ({ tunnel, sessionId: session.id, namespace: 'default', kube: null }), silentLogger);
const [name, value] = [header.slice(0, header.indexOf('=')), header.slice(header.indexOf('=') + 1)];
const info = await registry.intercept(
  create(InterceptRequestSchema, { workload, mode: 'personal', localPort: Number(port), http: { headers: [{ name, value, regex: false }] } }),
);
console.log(JSON.stringify({ state: info.state, id: info.id }));
