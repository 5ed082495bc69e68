// A real Kubernetes control plane for the sandbox: binaries from scripts/build-kubernetes.sh's cache, run as
// processes in a network namespace.

export { KUBERNETES_VERSION, kubernetesBinDir, locateBinaries, requireBinaries, type ControlPlaneBinaries } from './binaries.js';
export { ControlPlaneError, type ControlPlaneErrorCode } from './control-plane-errors.js';
export {
  DEFAULT_SECURE_PORT,
  DEFAULT_SERVICE_CLUSTER_IP_RANGE,
  readControlPlane,
  startControlPlane,
  stopControlPlane,
  type ControlPlane,
  type ControlPlaneOptions,
} from './control-plane.js';
export { requestApiInNetns, type ApiBatch, type ApiCredentials, type ApiRequest, type ApiResponse } from './api-request.js';
export { renderKubeconfig, type KubeconfigParts } from './kubeconfig.js';
