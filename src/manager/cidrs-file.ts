// The pod and service CIDRs from a JSON file that may change while the manager runs (a mounted ConfigMap in a
// cluster, a file the sandbox writes): `{"podCidrs": ["10.244.0.0/16"], "serviceCidrs": ["10.96.0.0/12"]}`.
// The environment strategy, live: every change is pushed to the clients' WatchClusterInfo.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { parsePrefix, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { ClusterInfoSource } from './cluster-info-source.js';

export interface FileCidrs {
  podCidrs: IpPrefix[];
  serviceCidrs: IpPrefix[];
}

export class CidrsFileError extends Error {
  readonly code = 'CIDRS_FILE';
}

export function readCidrsFile(path: string): FileCidrs {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CidrsFileError(`${path}: ${(error as Error).message}`);
  }
  const list = (key: 'podCidrs' | 'serviceCidrs'): IpPrefix[] => {
    const value = (json as Record<string, unknown>)[key];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new CidrsFileError(`${path}: "${key}" must be a list of CIDRs such as ["10.96.0.0/12"]`);
    }
    return value.map((cidr: string) => {
      try {
        return parsePrefix(cidr);
      } catch {
        throw new CidrsFileError(`${path}: "${cidr}" in ${key} is not a CIDR`);
      }
    });
  };
  return { podCidrs: list('podCidrs'), serviceCidrs: list('serviceCidrs') };
}

/** Applies the file's CIDRs whenever it changes; a bad version is logged and the last good one kept. */
export function followCidrsFile(path: string, cluster: ClusterInfoSource, log: Logger): () => void {
  watchFile(path, { interval: 500 }, () => {
    try {
      cluster.update(readCidrsFile(path));
      log.info('cluster CIDRs reloaded', { file: path });
    } catch (error) {
      log.error('cluster CIDRs file rejected; keeping the previous CIDRs', { error: (error as Error).message });
    }
  });
  return () => unwatchFile(path);
}
