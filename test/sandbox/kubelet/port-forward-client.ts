// Run inside the control plane's namespace by kubelet.test.ts: fetches http://<pod>:<port>/ through the API
// server's portforward subresource with @kubernetes/client-node's PortForward, as a client program would, and
// prints the HTTP status and body as JSON.
// usage: node port-forward-client.js KUBECONFIG NAMESPACE POD PORT

import { get } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { KubeConfig, PortForward } from '@kubernetes/client-node';

const [kubeconfig, namespace, pod, port] = process.argv.slice(2) as [string, string, string, string];
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const forward = new PortForward(kc);
const server = createServer((socket) => {
  void forward.portForward(namespace, pod, [Number(port)], socket, null, socket).catch((error: unknown) => {
    process.stderr.write(`port-forward failed: ${(error as Error).message}\n`);
    socket.destroy();
  });
});
server.listen(0, '127.0.0.1', () => {
  const local = (server.address() as AddressInfo).port;
  get({ host: '127.0.0.1', port: local, path: '/', headers: { Connection: 'close' } }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    res.on('end', () => {
      process.stdout.write(JSON.stringify({ status: res.statusCode, body }) + '\n');
      process.exit(0);
    });
  }).on('error', (error) => {
    process.stderr.write(`request failed: ${error.message}\n`);
    process.exit(1);
  });
});
