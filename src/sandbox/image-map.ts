// The sandbox kubelet's "images": what a container of each image runs, as host binaries and kubetun's own
// programs, in the form the kubelet reads (--image-map): repository (no tag) → entrypoint and default args, as
// an image's ENTRYPOINT and CMD.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultImage } from '../k8s/manager-manifests.js';
import { kubetunVersion } from '../version.js';
import { imageRepository as repository, type ImageEntry } from './kubelet/images.js';
import { SANDBOX_IMAGES } from './sandbox-config.js';

const program = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

export function imageMap(node = process.execPath): Record<string, ImageEntry> {
  return {
    [repository(SANDBOX_IMAGES.echo)]: { entrypoint: [node, program('./workloads/echo-server.js')], args: [] },
    [repository(SANDBOX_IMAGES.clusterDns)]: { entrypoint: [node, program('./cluster-dns/main.js')], args: [] },
    [repository(SANDBOX_IMAGES.redis)]: { entrypoint: ['redis-server'], args: [] },
    [repository(SANDBOX_IMAGES.iperf)]: { entrypoint: ['iperf3'], args: ['--server'] },
    // The Dockerfile's ENTRYPOINT and CMD.
    // kubetun's published manager image, as `kubetun install` names it: the sandbox runs this checkout instead.
    [repository(defaultImage(kubetunVersion()))]: { entrypoint: [node, program('../cli/main.js')], args: ['traffic-manager'] },
  };
}

export function writeImageMap(file: string): void {
  writeFileSync(file, `${JSON.stringify(imageMap(), null, 2)}\n`);
}
