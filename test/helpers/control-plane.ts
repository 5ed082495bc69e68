// A real control plane (scripts/build-kubernetes.sh's binaries) in a test namespace of its own, for tests that
// need a Kubernetes API server. The API server listens on a non-loopback address of the namespace's lo, as
// the sandbox's node has one; processes that talk to it run inside the namespace (ns.exec / ns.spawn).

import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locateBinaries } from '../../src/sandbox/control-plane/binaries.js';
import { requestApiInNetns, type ApiRequest, type ApiResponse } from '../../src/sandbox/control-plane/api-request.js';
import { startControlPlane, stopControlPlane, type ControlPlane } from '../../src/sandbox/control-plane/control-plane.js';
import { TestNetns } from './netns.js';

export const TEST_API_ADDRESS = '198.18.0.1';
const START_TIMEOUT_MS = 120_000;

/** Why a control-plane test cannot run here, or null when it can. */
export function controlPlaneSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root: creates a network namespace';
  const found = locateBinaries();
  if (Array.isArray(found)) return `the control-plane binaries are not built (missing ${found.join(', ')}): run scripts/build-kubernetes.sh`;
  return null;
}

export interface TestControlPlane {
  ns: TestNetns;
  plane: ControlPlane;
  stateDir: string;
  /** Admin requests to the API server, made from inside the namespace; failures are answers, not throws. */
  api(requests: ApiRequest[], options?: { untilStatus?: number; timeoutMs?: number }): Promise<ApiResponse[]>;
  /** Stops the control plane, kills what ns.spawn started, deletes the namespace and the state. */
  destroy(): Promise<void>;
}

/**
 * Starts a control plane in a new namespace, or returns null after skipping `t` with the reason (not root, or
 * the binaries are not built). The caller must destroy() it.
 */
export async function startTestControlPlane(t: TestContext, tag: string): Promise<TestControlPlane | null> {
  const reason = controlPlaneSkipReason();
  if (reason !== null) {
    t.skip(reason);
    return null;
  }
  const ns = await TestNetns.create(tag);
  const stateDir = mkdtempSync(join(tmpdir(), `kt-${tag}-cp-`));
  let plane: ControlPlane | null = null;
  const destroy = async (): Promise<void> => {
    if (plane !== null) await stopControlPlane(plane);
    await ns.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    const added = await ns.exec('ip', ['addr', 'add', `${TEST_API_ADDRESS}/32`, 'dev', 'lo']);
    if (added.code !== 0) throw new Error(`cannot add ${TEST_API_ADDRESS} in ${ns.name}: ${added.stderr}`);
    plane = await startControlPlane({ netns: ns.name, address: TEST_API_ADDRESS, stateDir, readyTimeoutMs: START_TIMEOUT_MS });
  } catch (error) {
    await destroy();
    throw error;
  }
  const started = plane;
  return {
    ns,
    plane: started,
    stateDir,
    api: (requests, options = {}) =>
      requestApiInNetns(ns.name, { credentials: started.admin, requests, timeoutMs: options.timeoutMs ?? 20_000, untilStatus: options.untilStatus }),
    destroy,
  };
}
