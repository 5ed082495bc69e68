// What the traffic agent learns from its container's environment: the webhook's configuration, the pod's
// identity (downward API), and the app container's environment (copied by the webhook with the KTAPP_ prefix).

import { isIP } from 'node:net';
import { APP_ENV_PREFIX, AgentConfigError, parseAgentConfig, AGENT_CONFIG_ENV, type AgentConfig } from './agent-contract.js';

export interface AgentEnvironment {
  config: AgentConfig;
  pod: string;
  podNamespace: string;
  podIp: string;
  /** The app container's environment, prefix stripped. */
  appEnvironment: Record<string, string>;
}

/** The most app variables reported to the manager (a pod with more is unusual; the rest are dropped). */
const MAX_APP_VARIABLES = 1024;
/** The most bytes of names and values reported (the directive stream's message must stay small). */
const MAX_APP_ENVIRONMENT_BYTES = 512 * 1024;

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new AgentConfigError(`${name} is not set: the webhook gives the agent POD_NAME, POD_NAMESPACE and POD_IP from the downward API`);
  }
  return value;
}

/** The app's environment: every KTAPP_ variable, prefix stripped, bounded in count and size. */
export function appEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  let count = 0;
  let bytes = 0;
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(APP_ENV_PREFIX) || name.length === APP_ENV_PREFIX.length || value === undefined) continue;
    const key = name.slice(APP_ENV_PREFIX.length);
    bytes += key.length + value.length;
    if (++count > MAX_APP_VARIABLES || bytes > MAX_APP_ENVIRONMENT_BYTES) break;
    out[key] = value;
  }
  return out;
}

/** Reads the agent's environment; throws AgentConfigError naming what is missing or wrong. */
export function readAgentEnvironment(env: NodeJS.ProcessEnv): AgentEnvironment {
  const config = parseAgentConfig(env[AGENT_CONFIG_ENV]);
  const podIp = required(env, 'POD_IP');
  if (isIP(podIp) === 0) throw new AgentConfigError(`POD_IP "${podIp}" is not an IP address`);
  return {
    config,
    pod: required(env, 'POD_NAME'),
    podNamespace: required(env, 'POD_NAMESPACE'),
    podIp,
    appEnvironment: appEnvironment(env),
  };
}
