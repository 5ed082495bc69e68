// `node main.js --kubeconfig … --node-name … --node-ip … --pod-cidr … --bridge … --netns-prefix … --state-dir …`:
// the sandbox kubelet as a program, run as root inside the node's network namespace. SIGTERM or SIGINT stops
// every pod, deletes their namespaces, marks the node NotReady and exits 0.

import { createLogger } from '../../log/logger.js';
import { startKubelet } from './kubelet.js';
import { parseKubeletArgs, USAGE, UsageError } from './options.js';

async function main(): Promise<number> {
  let options;
  try {
    options = parseKubeletArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`kubelet: ${error.message}\n${USAGE}\n`);
    return 2;
  }
  const log = createLogger(options.logLevel);
  const kubelet = await startKubelet({ ...options, log });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await kubelet.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kubelet: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
