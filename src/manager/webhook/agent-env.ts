// The app container's environment, restated for the agent container under APP_ENV_PREFIX: the kubelet then
// resolves its ConfigMap, Secret, field and resource references for the agent exactly as for the app, and the
// agent reports the values with the prefix stripped (`kubetun intercept --env-file`).

import type { V1EnvFromSource, V1EnvVar } from '@kubernetes/client-node';
import { APP_ENV_PREFIX } from '../../agent/agent-contract.js';

// `$$` is an escaped `$` and stays as it is; `$(NAME)` is a reference (Kubernetes' expansion syntax).
const REFERENCE = /\$\$|\$\(([^)]*)\)/g;

/**
 * `$(NAME)` → `$(KTAPP_NAME)` for the app's own variables; other references (the Service variables the kubelet
 * adds, which the agent container gets too) are left alone.
 */
function prefixReferences(value: string, own: ReadonlySet<string>): string {
  return value.replace(REFERENCE, (match: string, name: string | undefined) => (name !== undefined && own.has(name) ? `$(${APP_ENV_PREFIX}${name})` : match));
}

/**
 * The agent's copy of `env`. A resourceFieldRef names the app container (it would otherwise read the agent's own
 * limits); when the app container is left out of the pod (`replaced`), such variables cannot be resolved and are
 * left out too.
 */
export function agentAppEnv(env: readonly V1EnvVar[] | undefined, appContainer: string, replaced: boolean): V1EnvVar[] {
  const own = new Set((env ?? []).map((variable) => variable.name));
  const copied: V1EnvVar[] = [];
  for (const variable of env ?? []) {
    const name = `${APP_ENV_PREFIX}${variable.name}`;
    const resource = variable.valueFrom?.resourceFieldRef;
    if (resource !== undefined) {
      if (!replaced) copied.push({ name, valueFrom: { resourceFieldRef: { ...resource, containerName: resource.containerName ?? appContainer } } });
    } else if (variable.valueFrom !== undefined) {
      copied.push({ name, valueFrom: variable.valueFrom });
    } else {
      copied.push({ name, value: prefixReferences(variable.value ?? '', own) });
    }
  }
  return copied;
}

/** The agent's copy of `envFrom`: every ConfigMap or Secret key arrives with the prefix before its own. */
export function agentAppEnvFrom(envFrom: readonly V1EnvFromSource[] | undefined): V1EnvFromSource[] {
  return (envFrom ?? []).map((source) => ({ ...source, prefix: `${APP_ENV_PREFIX}${source.prefix ?? ''}` }));
}
