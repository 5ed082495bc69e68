// Where the control plane's binaries are: the three Kubernetes ones in the cache that
// scripts/build-kubernetes.sh fills (keyed by version), etcd from Debian's etcd-server.

import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { findBinary } from '../host-commands.js';
import { ControlPlaneError } from './control-plane-errors.js';

export const KUBERNETES_VERSION = 'v1.20.2';
export const KUBERNETES_CACHE_ROOT = '/var/cache/kubetun';

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
}

/** The folder the build script puts the binaries of `version` in. */
export function kubernetesBinDir(version = KUBERNETES_VERSION, cacheRoot = KUBERNETES_CACHE_ROOT): string {
  return join(cacheRoot, `kubernetes-${version}`, 'bin');
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The paths of the binaries, or the list of what is missing, each with how to get it. */
export function locateBinaries(binDir = kubernetesBinDir(), find: (binary: string) => string | null = findBinary): ControlPlaneBinaries | string[] {
  const kube = {
    kubeApiserver: join(binDir, 'kube-apiserver'),
    kubeControllerManager: join(binDir, 'kube-controller-manager'),
    kubeScheduler: join(binDir, 'kube-scheduler'),
  };
  const missing = Object.values(kube)
    .filter((path) => !executable(path))
    .map((path) => `${path} (run scripts/build-kubernetes.sh as root)`);
  const etcd = find('etcd');
  if (etcd === null) missing.push('etcd (apt-get install etcd-server)');
  return missing.length === 0 && etcd !== null ? { etcd, ...kube } : missing;
}

/** Like locateBinaries, but throws ControlPlaneError MISSING_BINARY naming what is missing. */
export function requireBinaries(binDir = kubernetesBinDir()): ControlPlaneBinaries {
  const found = locateBinaries(binDir);
  if (Array.isArray(found)) {
    throw new ControlPlaneError('MISSING_BINARY', `the sandbox control plane needs ${found.join(', ')}`);
  }
  return found;
}
