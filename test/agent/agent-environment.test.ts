import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentConfigError } from '../../src/agent/agent-contract.js';
import { appEnvironment, readAgentEnvironment } from '../../src/agent/agent-environment.js';

const CONFIG = JSON.stringify({
  workload: 'echo',
  kind: 'Deployment',
  namespace: 'default',
  container: 'app',
  manager: { host: 'kubetun-manager.kubetun', port: 8083 },
  ports: [{ agentPort: 9900, containerPort: 8080, name: 'http', protocol: 'TCP', takeover: 'named-port' }],
});
const POD = { POD_NAME: 'echo-1', POD_NAMESPACE: 'default', POD_IP: '10.1.2.3' };

describe('agent environment', () => {
  test('reads the config, the pod and the app environment with the prefix stripped', () => {
    const env = readAgentEnvironment({ KUBETUN_AGENT_CONFIG: CONFIG, ...POD, KTAPP_DB_URL: 'postgres://db', KTAPP_: 'x', PATH: '/bin' });
    assert.equal(env.config.manager.port, 8083);
    assert.equal(env.pod, 'echo-1');
    assert.equal(env.podIp, '10.1.2.3');
    assert.deepEqual(env.appEnvironment, { DB_URL: 'postgres://db' });
  });

  test('a missing pod field or config is an AgentConfigError naming it', () => {
    assert.throws(() => readAgentEnvironment({ KUBETUN_AGENT_CONFIG: CONFIG, ...POD, POD_IP: '' }), (e: Error) => e instanceof AgentConfigError && /POD_IP is not set/.test(e.message));
    assert.throws(() => readAgentEnvironment({ KUBETUN_AGENT_CONFIG: CONFIG, ...POD, POD_IP: 'pod' }), /POD_IP "pod" is not an IP address/);
    assert.throws(() => readAgentEnvironment({ ...POD }), /KUBETUN_AGENT_CONFIG is not set/);
  });

  test('the app environment is bounded in count', () => {
    const many: NodeJS.ProcessEnv = {};
    for (let i = 0; i < 2000; i++) many[`KTAPP_V${i}`] = 'v';
    assert.equal(Object.keys(appEnvironment(many)).length, 1024);
  });
});
