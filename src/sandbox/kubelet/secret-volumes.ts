// Secret volumes, as the kubelet sets them up: the Secret's keys (or its listed items) written as files in a
// folder of the pod's, which a container sees read-only at its volumeMount's mountPath. They are written when the
// pod is set up, and not again: a Secret changed later does not reach a running pod (a real kubelet refreshes it).

import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Container, PodSpec, SecretVolumeSource } from './types.js';

const DEFAULT_MODE = 0o644;

/** A secret volume cannot be set up (no such Secret, a missing key, a bad path); the message says which. */
export class VolumeSetupError extends Error {
  readonly code = 'VolumeSetupFailed';
  constructor(volume: string, why: string) {
    super(`MountVolume.SetUp failed for volume "${volume}" : ${why}`);
    this.name = 'VolumeSetupError';
  }
}

export interface VolumeFile {
  /** Relative to the volume's folder. */
  path: string;
  content: Buffer;
  mode: number;
}

function checkMode(volume: string, field: string, mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new VolumeSetupError(volume, `${field} ${mode} is not a file mode (0 to 0777)`);
  return mode;
}

/** A relative path without '..' or empty parts, as the API server also demands of an item's path. */
function checkPath(volume: string, path: string): string {
  const parts = path.split('/');
  if (path.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new VolumeSetupError(volume, `item path "${path}" must be relative, without '.', '..' or empty parts`);
  }
  return path;
}

/**
 * The files of secret volume `volume` from the Secret's `data` (base64 values, as the API gives them), or null when
 * there is no such Secret: an optional volume is then empty, any other is an error.
 */
export function secretVolumeFiles(volume: string, source: SecretVolumeSource, data: Record<string, string> | null): VolumeFile[] {
  const secret = source.secretName ?? '';
  const optional = source.optional === true;
  if (data === null) {
    if (optional) return [];
    throw new VolumeSetupError(volume, `secret "${secret}" not found`);
  }
  const defaultMode = checkMode(volume, 'defaultMode', source.defaultMode ?? DEFAULT_MODE);
  const items = source.items ?? Object.keys(data).sort().map((key) => ({ key, path: key, mode: undefined }));
  const files: VolumeFile[] = [];
  for (const item of items) {
    const value = data[item.key];
    if (value === undefined) {
      if (optional) continue;
      throw new VolumeSetupError(volume, `secret "${secret}" references non-existent secret key: ${item.key}`);
    }
    files.push({ path: checkPath(volume, item.path), content: Buffer.from(value, 'base64'), mode: checkMode(volume, `mode of ${item.key}`, item.mode ?? defaultMode) });
  }
  return files;
}

/**
 * Writes a volume's files into `dir`, afresh. With an fsGroup, as the kubelet does, the folder and files belong to
 * that group and the group may read them (a runAsUser other than root then reads a 0400 key through the group);
 * without one they are root's, readable by others only as their mode says.
 */
export function writeVolume(dir: string, files: VolumeFile[], fsGroup: number | undefined): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const file of files) {
    const path = join(dir, file.path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, file.content, { mode: file.mode });
    // The umask may have taken bits away.
    chmodSync(path, file.mode);
  }
  if (fsGroup !== undefined) shareWithGroup(dir, fsGroup);
}

function shareWithGroup(path: string, gid: number): void {
  const stat = statSync(path);
  chownSync(path, 0, gid);
  if (stat.isDirectory()) {
    chmodSync(path, (stat.mode & 0o7777) | 0o2550);
    for (const entry of readdirSync(path)) shareWithGroup(join(path, entry), gid);
  } else chmodSync(path, (stat.mode & 0o7777) | 0o440);
}

/** A folder of the pod's to show read-only at `target` inside a container. */
export interface ContainerMount {
  source: string;
  target: string;
}

export type VolumeMounts = { ok: true; mounts: ContainerMount[] } | { ok: false; reason: 'CreateContainerConfigError'; message: string };

/**
 * The container's mounts of the pod's secret volumes, each from `volumeDir(name)`. Volumes of other kinds are not
 * mounted: the sandbox's containers use the node's file system.
 */
export function secretVolumeMounts(pod: Pick<PodSpec, 'volumes'>, container: Pick<Container, 'name' | 'volumeMounts'>, volumeDir: (name: string) => string): VolumeMounts {
  const mounts: ContainerMount[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    if (volume?.secret === undefined) continue;
    const refuse = (why: string): VolumeMounts => ({ ok: false, reason: 'CreateContainerConfigError', message: `container ${container.name}, volume mount ${mount.name}: ${why}` });
    if (mount.subPath !== undefined && mount.subPath !== '') return refuse('subPath is not supported by the sandbox kubelet: mount the whole volume');
    if (!mount.mountPath.startsWith('/') || mount.mountPath.split('/').includes('..')) return refuse(`mountPath "${mount.mountPath}" must be an absolute path without '..'`);
    mounts.push({ source: volumeDir(mount.name), target: mount.mountPath });
  }
  return { ok: true, mounts };
}
