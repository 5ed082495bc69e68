// DNS through the tunnel against a real dnsmasq playing the cluster DNS on 127.0.0.1 (a high port).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DnsFlag,
  DnsRcode,
  DnsType,
  buildDnsMessage,
  nameToText,
  parseDnsMessage,
  rcodeOf,
  textToName,
} from '../../src/dns/dns-message.js';
import { TunnelError } from '../../src/tunnel/tunnel-client.js';
import { startTunnel, type TunnelFixture } from './tunnel-fixture.js';

let dnsmasq: ChildProcess | undefined;
let tunnel: TunnelFixture;

async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  socket.close();
  return port;
}

function query(name: string, type: number = DnsType.A, id = 0x1234): Buffer {
  return buildDnsMessage({
    id,
    flags: DnsFlag.RD,
    questions: [{ name: textToName(name), type, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  });
}

before(async () => {
  const port = await freeUdpPort();
  dnsmasq = spawn(
    'dnsmasq',
    [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--conf-file=/dev/null',
      '--pid-file=',
      '--bind-interfaces',
      '--listen-address=127.0.0.1',
      '--host-record=echo.default.svc.cluster.local,10.96.0.20',
      '--host-record=orders.shop.svc.cluster.local,10.96.0.30',
      '--local=/cluster.local/',
      `--port=${port}`,
    ],
    { stdio: 'ignore' },
  );
  tunnel = await startTunnel({ cluster: {
    podCidrs: [],
    serviceCidrs: [],
    dns: { ip: '127.0.0.1', port },
    clusterDomain: 'cluster.local',
  } });
  // dnsmasq is ready when it answers.
  for (let i = 0; i < 50; i++) {
    const answer = parseDnsMessage(await tunnel.client.dnsQuery(query('echo.default.svc.cluster.local')));
    if (rcodeOf(answer.flags) === DnsRcode.NOERROR) return;
    await sleep(50);
  }
  throw new Error('dnsmasq did not start');
});

after(async () => {
  dnsmasq?.kill();
  await tunnel.close();
});

test('a short name resolves in the client namespace and is answered for the name asked', async () => {
  const answer = parseDnsMessage(await tunnel.client.dnsQuery(query('echo')));
  assert.equal(answer.id, 0x1234);
  assert.equal(rcodeOf(answer.flags), DnsRcode.NOERROR);
  assert.equal(nameToText(answer.questions[0]!.name), 'echo');
  const a = answer.answers.find((r) => r.type === DnsType.A)!;
  assert.equal(nameToText(a.name), 'echo');
  assert.deepEqual([...a.data], [10, 96, 0, 20]);
});

test('name.namespace and the full name resolve too, keeping the asked case', async () => {
  for (const name of ['orders.shop', 'ECHO.default', 'echo.default.svc.cluster.local']) {
    const answer = parseDnsMessage(await tunnel.client.dnsQuery(query(name)));
    assert.equal(rcodeOf(answer.flags), DnsRcode.NOERROR, name);
    assert.equal(nameToText(answer.questions[0]!.name), name);
    assert.equal(nameToText(answer.answers[0]!.name), name);
  }
});

test('an unknown name is NXDOMAIN with the question asked', async () => {
  const answer = parseDnsMessage(await tunnel.client.dnsQuery(query('no-such-service')));
  assert.equal(rcodeOf(answer.flags), DnsRcode.NXDOMAIN);
  assert.equal(nameToText(answer.questions[0]!.name), 'no-such-service');
  assert.equal(answer.answers.length, 0);
});

test('a DNS query without a session is refused with SESSION', async () => {
  const id = tunnel.client.sessionId;
  tunnel.client.sessionId = undefined;
  try {
    await assert.rejects(tunnel.client.dnsQuery(query('echo')), (error: unknown) => {
      assert.ok(error instanceof TunnelError);
      assert.equal(error.code, 'SESSION');
      return true;
    });
  } finally {
    tunnel.client.sessionId = id;
  }
});

test('GET /dns-query?dns=<base64url> works too (RFC 8484 §4.1)', async () => {
  const session = http2.connect(tunnel.manager.url);
  try {
    const path = `/dns-query?dns=${query('echo').toString('base64url')}`;
    const request = session.request({ ':path': path, accept: 'application/dns-message', 'kubetun-session': tunnel.client.sessionId! });
    const [headers] = (await once(request, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 200);
    assert.equal(headers['content-type'], 'application/dns-message');
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    // The client takes an answer at its announced length, without waiting for END_STREAM.
    assert.equal(headers['content-length'], String(body.length));
    const answer = parseDnsMessage(body);
    assert.deepEqual([...answer.answers[0]!.data], [10, 96, 0, 20]);
  } finally {
    session.close();
  }
});
