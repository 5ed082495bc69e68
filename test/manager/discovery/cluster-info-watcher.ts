// A program for the discovery end-to-end test, run inside the test's network namespace (where the manager
// listens): arrives as a client of the manager at argv[2] and prints every WatchClusterInfo message as a JSON line.
// It ends when stdin closes or the stream ends.
import { TunnelClient } from '../../../src/tunnel/tunnel-client.js';

const url = process.argv[2];
if (url === undefined) throw new Error('usage: cluster-info-watcher URL');
const client = await TunnelClient.connect(url);
const session = await client.manager.arriveAsClient({ name: 'discovery-e2e', namespace: 'default', hostname: 'test', version: '0.0.0-test' });
client.sessionId = session.id;
const abort = new AbortController();
process.stdin.on('close', () => abort.abort());
process.stdin.resume();
try {
  for await (const info of client.manager.watchClusterInfo({ id: session.id }, { signal: abort.signal })) {
    const line = {
      podCidrs: info.podCidrs,
      serviceCidrs: info.serviceCidrs,
      dnsServer: info.dns?.serverIp ?? '',
      clusterDomain: info.dns?.clusterDomain ?? '',
      revision: Number(info.revision),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
} catch (error) {
  if (!abort.signal.aborted) throw error;
}
process.exit(0);
