// `kubetun install` and `kubetun uninstall`: deploy the traffic manager into the cluster of the kubeconfig's
// context, or remove it. `install --dry-run` prints the objects without contacting a cluster.

import { Option, type Command } from 'commander';
import type { KubernetesObject } from '@kubernetes/client-node';
import { AgentRollback } from '../k8s/agent-rollback.js';
import { InstallError, Installer, type ApplyAction, type RemoveAction } from '../k8s/installer.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, KubeConfigError, loadKubeConfig } from '../k8s/kube-client.js';
import {
  DEFAULT_NAMESPACE,
  MANAGER_NAME,
  ManifestError,
  managerManifests,
  manifestList,
  manifestsJson,
  manifestsYaml,
  type ManagerManifests,
} from '../k8s/manager-manifests.js';
import { createWebhookTls, webhookDnsNames, type WebhookTls } from '../k8s/webhook-tls.js';
import { kubetunVersion } from '../version.js';

const USAGE_EXIT_CODE = 2;
const DEFAULT_TIMEOUT_SECONDS = '120';

interface ClusterFlags {
  namespace: string;
  kubeconfig?: string;
  context?: string;
  timeout: string;
  requestTimeout: string;
}

interface InstallFlags extends ClusterFlags {
  image?: string;
  tlsSecret?: string;
  dryRun?: boolean;
  output?: 'yaml' | 'json';
}

const label = (object: KubernetesObject): string => `${object.kind?.toLowerCase()}/${object.metadata?.name}`;

const APPLIED: Record<ApplyAction, string> = {
  created: 'created',
  updated: 'updated',
  unchanged: 'unchanged',
  kept: 'exists and was not created by kubetun: used as it is',
};

const REMOVED: Record<RemoveAction, string> = {
  deleted: 'deleted',
  absent: 'not found',
  kept: 'was not created by kubetun: left as it is',
};

function milliseconds(command: Command, flag: string, text: string): number {
  const seconds = Number(text);
  if (text.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    command.error(`kubetun ${command.name()}: ${flag} ${text} is not a positive number of seconds`, { exitCode: USAGE_EXIT_CODE });
  }
  return seconds * 1000;
}

interface Prepared {
  /** Without the webhook's TLS: enough to name every object. */
  manifests: ManagerManifests;
  /** The same objects, with the webhook's CA and certificate. */
  withWebhookTls: (tls: WebhookTls) => ManagerManifests;
  timeoutMs: number;
  requestTimeoutMs: number;
}

/** The usage checks shared by both commands; a bad value exits with 2. */
function prepare(command: Command, flags: ClusterFlags, image?: string, tlsSecret?: string): Prepared {
  const timeoutMs = milliseconds(command, '--timeout', flags.timeout);
  const requestTimeoutMs = milliseconds(command, '--request-timeout', flags.requestTimeout);
  const options = { namespace: flags.namespace, version: kubetunVersion(), image, ...(tlsSecret === undefined ? {} : { tlsSecret }) };
  try {
    return { manifests: managerManifests(options), withWebhookTls: (webhookTls) => managerManifests({ ...options, webhookTls }), timeoutMs, requestTimeoutMs };
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    return command.error(`kubetun ${command.name()}: ${error.message}`, { exitCode: USAGE_EXIT_CODE });
  }
}

/** Runs a cluster action; what the user can fix (kubeconfig, API failures) becomes one line on stderr and 1. */
async function report(command: Command, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof InstallError || error instanceof KubeConfigError)) throw error;
    console.error(`kubetun ${command.name()}: ${error.message}`);
    process.exitCode = 1;
  }
}

async function install(flags: InstallFlags, command: Command): Promise<void> {
  if (flags.output !== undefined && flags.dryRun !== true) {
    command.error(`kubetun install: -o/--output only goes with --dry-run (which prints the objects instead of applying them)`, { exitCode: USAGE_EXIT_CODE });
  }
  const { manifests: named, withWebhookTls, timeoutMs, requestTimeoutMs } = prepare(command, flags, flags.image, flags.tlsSecret);
  const dnsNames = webhookDnsNames(MANAGER_NAME, flags.namespace);
  if (flags.dryRun === true) {
    // A new CA each time: what is printed is a complete, consistent set to apply.
    const objects = manifestList(withWebhookTls(createWebhookTls(dnsNames)));
    process.stdout.write(flags.output === 'json' ? manifestsJson(objects) : manifestsYaml(objects));
    return;
  }
  await report(command, async () => {
    const installer = new Installer(loadKubeConfig(flags), requestTimeoutMs);
    const applied = (object: KubernetesObject, action: ApplyAction): void => console.log(`${label(object)} ${APPLIED[action]}`);
    // The namespace first, as always; then the webhook's Secret in it is kept or renewed, and the rest follows.
    await installer.applyAll([named.namespace], applied);
    const { tls, renewed } = await installer.webhookTls(named.webhookSecret, dnsNames);
    if (renewed !== undefined) console.log(`${label(named.webhookSecret)}: ${renewed}; a new CA and certificate replace it`);
    const manifests = withWebhookTls(tls);
    await installer.applyAll(manifestList(manifests).filter((object) => object.kind !== 'Namespace'), applied);
    const { deployment } = manifests;
    console.log(`waiting up to ${timeoutMs / 1000} s for deployment ${flags.namespace}/${deployment.metadata?.name} to be available`);
    await installer.waitAvailable(deployment, timeoutMs);
    console.log(`the traffic manager is available in namespace ${flags.namespace} (${deployment.spec?.template.spec?.containers[0]?.image})`);
  });
}

async function uninstall(flags: ClusterFlags, command: Command): Promise<void> {
  const { manifests, timeoutMs, requestTimeoutMs } = prepare(command, flags);
  await report(command, async () => {
    const config = loadKubeConfig(flags);
    const installer = new Installer(config, requestTimeoutMs);
    const rollback = new AgentRollback(config, requestTimeoutMs);
    // "not found" lines wait until something is found: a plain "not installed" reads better than one per object.
    const held: string[] = [];
    let found = false;
    const say = (line: string, finding: boolean): void => {
      held.push(line);
      found ||= finding;
      if (found) console.log(held.splice(0).join('\n'));
    };
    // Once no webhook injects agents, the workloads are rolled out without them.
    const removeAgents = async (): Promise<void> => {
      const others = await rollback.otherInjectors(flags.namespace);
      if (others.length > 0) {
        say(`agents stay in their workloads: kubetun is installed in namespace ${others.join(', ')} too, and its injector serves them`, false);
        return;
      }
      await rollback.rollBack((w) => say(`${w.kind.toLowerCase()}/${w.name} in namespace ${w.namespace}: agent removed (its pods roll out)`, true));
    };
    await installer.removeAll(
      manifests,
      timeoutMs,
      (object, action) => {
        say(`${label(object)} ${REMOVED[action]}`, action !== 'absent');
        if (found && action === 'deleted' && object.kind === 'Namespace') console.log(`waiting up to ${timeoutMs / 1000} s for namespace ${flags.namespace} to be gone`);
      },
      removeAgents,
    );
    if (!found) {
      console.log(`kubetun is not installed in namespace ${flags.namespace}: nothing to delete`);
      return;
    }
    console.log(`kubetun is uninstalled from namespace ${flags.namespace}`);
  });
}

function clusterOptions(command: Command): Command {
  return command
    .option('-n, --namespace <name>', 'the namespace of the traffic manager', DEFAULT_NAMESPACE)
    .option('--kubeconfig <file>', 'the kubeconfig to use instead of KUBECONFIG or ~/.kube/config')
    .option('--context <name>', "the kubeconfig context to use instead of its current-context")
    .option('--timeout <seconds>', 'how long to wait for the traffic manager to be available / the namespace to be gone', DEFAULT_TIMEOUT_SECONDS)
    .option('--request-timeout <seconds>', 'how long to wait for each answer of the API server', String(DEFAULT_REQUEST_TIMEOUT_MS / 1000))
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE));
}

export function registerInstallCommands(program: Command): void {
  clusterOptions(program.command('install'))
    .description('deploy the traffic manager and its agent injector (a mutating webhook) into the cluster (or update them), and wait until it is available')
    .option('--image <ref>', `the traffic manager's image (default ghcr.io/kubetun/traffic-manager:${kubetunVersion()})`)
    .option('--tls-secret <name>', "a kubernetes.io/tls Secret in the namespace: the manager also serves TLS on port 8443 for kubetun connect --manager-url, admitting users allowed to port-forward to it")
    .option('--dry-run', 'print the objects instead of applying them; contacts no cluster')
    .addOption(new Option('-o, --output <format>', 'the format of --dry-run (default yaml)').choices(['yaml', 'json']))
    .action(install);

  clusterOptions(program.command('uninstall'))
    .description('remove the agent injector, take the agents out of the workloads, remove the traffic manager and everything install created, and wait until its namespace is gone')
    .action(uninstall);
}
