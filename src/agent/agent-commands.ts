// `kubetun traffic-agent` and `kubetun agent-init`: the two commands the webhook puts into an intercepted pod.
// Bad configuration is one line on stderr and exit 1, which the kubelet shows as the container's last state.

import type { Command } from 'commander';
import { createLogger, isLogLevel } from '../log/logger.js';
import { AgentConfigError, AGENT_CONFIG_ENV, parseAgentConfig } from './agent-contract.js';
import { readAgentEnvironment } from './agent-environment.js';
import { AgentInitError, agentRuleset, applyRuleset } from './agent-init.js';
import { startTrafficAgent } from './traffic-agent.js';

function fail(command: string, error: unknown): never {
  if (!(error instanceof AgentConfigError || error instanceof AgentInitError)) throw error;
  process.stderr.write(`kubetun ${command}: ${error.message}\n`);
  process.exit(1);
}

async function runTrafficAgent(): Promise<void> {
  let env;
  try {
    env = readAgentEnvironment(process.env);
  } catch (error) {
    fail('traffic-agent', error);
  }
  const level = process.env.KUBETUN_LOG_LEVEL ?? 'info';
  // Logs on stdout: the container's log, one JSON object per line.
  const log = createLogger(isLogLevel(level) ? level : 'info', (line) => process.stdout.write(line));
  let agent;
  try {
    agent = await startTrafficAgent(env, log);
  } catch (error) {
    // A port the agent cannot take (in use, not permitted) stops the pod's start with the reason.
    process.stderr.write(`kubetun traffic-agent: cannot listen: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const stop = (): void => {
    log.info('the traffic agent stops');
    void agent.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function runAgentInit(): Promise<void> {
  try {
    const config = parseAgentConfig(process.env[AGENT_CONFIG_ENV]);
    await applyRuleset(agentRuleset(config.ports));
    const redirected = config.ports.filter((p) => p.takeover === 'init-container');
    process.stdout.write(`kubetun agent-init: ${redirected.map((p) => `${p.containerPort}→${p.agentPort}/${p.protocol}`).join(', ') || 'no port'} redirected\n`);
  } catch (error) {
    fail('agent-init', error);
  }
}

export function registerAgentCommands(program: Command): void {
  program
    .command('traffic-agent')
    .description('run the traffic agent in an intercepted pod (injected by the traffic manager\'s webhook)')
    .action(runTrafficAgent);
  program
    .command('agent-init')
    .description('redirect the pod\'s numbered app ports to the traffic agent with nftables (the agent\'s init container)')
    .action(runAgentInit);
}
