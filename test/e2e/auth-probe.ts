// Run inside the sandbox's workstation by test/e2e/auth-manager-url.test.ts: asks a traffic manager's TLS listener
// for ArriveAsClient, CONNECT, connect-udp and a DNS query with the credentials given, and prints the HTTP status
// and kubetun-error reason of each as JSON ("401 unauthenticated"). Usage: node auth-probe.js URL CA_FILE [TOKEN_FILE]

import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';

const [url, caFile, tokenFile] = process.argv.slice(2) as [string, string, string | undefined];
const ca = readFileSync(caFile);
const token = tokenFile === undefined ? undefined : readFileSync(tokenFile, 'utf8').trim();

const REQUESTS: Record<string, http2.OutgoingHttpHeaders> = {
  arrive: { ':method': 'POST', ':path': '/kubetun.manager.v1.Manager/ArriveAsClient', 'content-type': 'application/grpc', te: 'trailers' },
  connect: { ':method': 'CONNECT', ':authority': '10.96.0.20:80' },
  connectUdp: { ':method': 'CONNECT', ':protocol': 'connect-udp', ':scheme': 'https', ':path': '/.well-known/masque/udp/10.96.0.10/53/', ':authority': 'manager' },
  dns: { ':method': 'GET', ':path': `/dns-query?dns=${Buffer.alloc(12).toString('base64url')}` },
};

async function status(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<string> {
  const stream = session.request(
    { ...headers, 'kubetun-session': '00000000-0000-4000-8000-000000000000', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    { endStream: false },
  );
  // An empty gRPC message (an ArriveAsClient with no fields) for the POST; nothing for the others.
  if (headers[':method'] === 'POST') stream.end(Buffer.alloc(5));
  const response = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  stream.close();
  return `${response[':status']} ${String(response['kubetun-error'] ?? '')}`.trim();
}

const session = http2.connect(url, { ca });
const result: Record<string, string> = {};
try {
  for (const [name, headers] of Object.entries(REQUESTS)) result[name] = await status(session, headers);
} finally {
  session.close();
}
console.log(JSON.stringify(result));
