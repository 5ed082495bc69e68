// agent-init: the ruleset it writes, its failures, and (as root, in network namespaces this test creates) the
// real redirect: a client in another namespace reaching the app port lands on the agent's port, while the pod's
// own 127.0.0.1:port still reaches the app.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { AgentInitError, agentRuleset, applyRuleset } from '../../src/agent/agent-init.js';
import { TestNetns, requireRoot } from '../helpers/netns.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

const HTTP: AgentPortConfig = { agentPort: 9900, containerPort: 8080, name: '', protocol: 'TCP', takeover: 'init-container' };
const DNS: AgentPortConfig = { agentPort: 9901, containerPort: 53, name: '', protocol: 'UDP', takeover: 'init-container' };
const NAMED: AgentPortConfig = { agentPort: 9902, containerPort: 9090, name: 'metrics', protocol: 'TCP', takeover: 'named-port' };

const CONFIG = {
  workload: 'echo',
  kind: 'Deployment',
  namespace: 'default',
  container: 'app',
  manager: { host: '10.0.0.1', port: 8083 },
  ports: [HTTP, DNS, NAMED],
};

describe('agent-init ruleset', () => {
  test('redirects each init-container port in prerouting for IPv4 and IPv6, replacing the table', () => {
    const chain = [
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      '\t\ttcp dport 8080 redirect to :9900',
      '\t\tudp dport 53 redirect to :9901',
      '\t}',
    ];
    const expected = ['ip', 'ip6'].flatMap((family) => [
      `table ${family} kubetun_agent`,
      `delete table ${family} kubetun_agent`,
      `table ${family} kubetun_agent {`,
      ...chain,
      '}',
    ]);
    assert.equal(agentRuleset([HTTP, DNS, NAMED]), `${expected.join('\n')}\n`);
  });

  test('without init-container ports only removes the table', () => {
    assert.equal(agentRuleset([NAMED]), 'table ip kubetun_agent\ndelete table ip kubetun_agent\ntable ip6 kubetun_agent\ndelete table ip6 kubetun_agent\n');
  });

  test('a missing nft is an AgentInitError saying so', async () => {
    await assert.rejects(applyRuleset('', '/nonexistent/nft'), (e: Error) => e instanceof AgentInitError && /not installed in the agent image/.test(e.message));
  });

  test('the command without its configuration: one line on stderr, exit 1', async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const env = { ...process.env };
      delete env.KUBETUN_AGENT_CONFIG;
      execFile(process.execPath, [MAIN, 'agent-init'], { env }, (error, _stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stderr }));
    });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'kubetun agent-init: KUBETUN_AGENT_CONFIG is not set: the agent runs only as injected by the webhook\n');
  });
});

/** The pod: the app on 8080 and a stand-in agent on 9900, each saying who it is, on every address. */
const POD_SERVERS = `
const net = require('node:net');
let ready = 0;
for (const [port, name] of [[8080, 'app'], [9900, 'agent']]) {
  net.createServer((s) => s.end(name)).listen(port, '::', () => { if (++ready === 2) console.log('ready'); });
}`;
const CLIENT = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let got = ''; s.on('data', (d) => (got += d)); s.on('end', () => console.log(got));
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;

function waitForReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the pod's servers exited with ${code}`)));
  });
}

describe('agent-init in a network namespace (root)', { timeout: 60_000 }, () => {
  test('a client in another namespace lands on the agent; 127.0.0.1:8080 in the pod still reaches the app', async (t) => {
    if (!requireRoot(t)) return;
    const pod = await TestNetns.create('agi');
    const client = await TestNetns.create('agc');
    try {
      const ok = async (ns: TestNetns, cmd: string, args: string[], env: string[] = []): Promise<string> => {
        const result = await ns.exec('env', [...env, cmd, ...args]);
        assert.equal(result.code, 0, `${cmd} ${args.join(' ')}: ${result.stderr}`);
        return result.stdout;
      };
      // The veth pair is created inside the pod's namespace: nothing appears in the host's.
      await ok(pod, 'ip', ['link', 'add', 'agi0', 'type', 'veth', 'peer', 'name', 'agi1', 'netns', client.name]);
      for (const [ns, dev, v4, v6] of [[pod, 'agi0', '10.250.0.1/30', 'fd00:250::1/64'], [client, 'agi1', '10.250.0.2/30', 'fd00:250::2/64']] as const) {
        await ok(ns, 'ip', ['addr', 'add', v4, 'dev', dev]);
        await ok(ns, 'ip', ['addr', 'add', v6, 'dev', dev, 'nodad']);
        await ok(ns, 'ip', ['link', 'set', dev, 'up']);
      }
      await waitForReady(pod.spawn(process.execPath, ['-e', POD_SERVERS]));
      const config = `KUBETUN_AGENT_CONFIG=${JSON.stringify(CONFIG)}`;
      // Twice: a restarted init container replaces its table instead of adding rules.
      await ok(pod, process.execPath, [MAIN, 'agent-init'], [config]);
      const out = await ok(pod, process.execPath, [MAIN, 'agent-init'], [config]);
      assert.match(out, /8080→9900\/TCP, 53→9901\/UDP redirected/);
      for (const family of ['ip', 'ip6']) {
        const table = await ok(pod, 'nft', ['list', 'table', family, 'kubetun_agent']);
        assert.equal(table.match(/redirect to :9900/g)?.length, 1, table);
      }
      assert.equal((await ok(client, process.execPath, ['-e', CLIENT, '10.250.0.1', '8080'])).trim(), 'agent');
      assert.equal((await ok(client, process.execPath, ['-e', CLIENT, 'fd00:250::1', '8080'])).trim(), 'agent');
      assert.equal((await ok(pod, process.execPath, ['-e', CLIENT, '127.0.0.1', '8080'])).trim(), 'app');
      assert.equal((await ok(pod, process.execPath, ['-e', CLIENT, '::1', '8080'])).trim(), 'app');
    } finally {
      await pod.destroy();
      await client.destroy();
    }
  });
});
