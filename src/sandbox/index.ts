// The sandbox cluster's public API: its fixed topology (config) and its life cycle (up, status, down, exec).

export {
  DEFAULT_SANDBOX_NAME,
  SANDBOX_STATE_ROOT,
  checkSandboxName,
  findService,
  podsOf,
  sandboxConfig,
  sandboxNamespaces,
  sandboxRanges,
  type DualStackAddress,
  type Protocol,
  type SandboxConfig,
  type SandboxNodePort,
  type SandboxPod,
  type SandboxService,
  type SandboxServicePort,
  type WorkloadKind,
} from './sandbox-config.js';
export { SandboxError, type SandboxErrorCode } from './sandbox-errors.js';
export { sandboxDown, sandboxUp, type SandboxDownResult, type SandboxUpOptions, type SandboxUpResult } from './sandbox.js';
export { sandboxExec, workstationCommand } from './sandbox-exec.js';
export { sandboxStatus, type PodPhase, type PodStatus, type SandboxStatus, type ServiceStatus } from './sandbox-status.js';
export { clusterCidrsFile, writeClusterCidrs } from './workloads.js';
