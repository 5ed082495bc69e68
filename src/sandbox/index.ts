// The sandbox cluster's public API: its fixed topology (config) and its life cycle (up, status, down, exec).

export {
  DEFAULT_SANDBOX_NAME,
  SANDBOX_STATE_ROOT,
  checkSandboxName,
  findService,
  sandboxConfig,
  sandboxNamespaces,
  sandboxRanges,
  type DualStackAddress,
  type Protocol,
  type SandboxConfig,
  type SandboxDeployment,
  type SandboxNode,
  type SandboxService,
  type SandboxServicePort,
} from './sandbox-config.js';
export { podsOf, readCluster, sandboxApi, type ClusterNode, type ClusterPod } from './cluster-api.js';
export { SandboxError, type SandboxErrorCode } from './sandbox-errors.js';
export { sandboxManagerUser } from './manager-users.js';
export { sandboxDown, sandboxUp, type SandboxDownResult, type SandboxUpOptions, type SandboxUpResult } from './sandbox.js';
export { sandboxExec, workstationCommand } from './sandbox-exec.js';
export { sandboxStatus, type ProcessStatus, type SandboxStatus, type ServiceStatus } from './sandbox-status.js';
