// The command lines of etcd and the three Kubernetes components (flags as of Kubernetes 1.20 and etcd 3.4).
// Everything listens inside the control plane's namespace: etcd and the components' own health ports on
// loopback only, the API server on the given address. The deprecated insecure ports are turned off.

import type { ControlPlaneBinaries } from './binaries.js';
import type { ControlPlanePki } from './pki.js';

export interface ControlPlaneLayout {
  address: string;
  securePort: number;
  serviceClusterIpRange: string;
  etcdDataDir: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  controllerManagerKubeconfig: string;
  schedulerKubeconfig: string;
  /** Where the controller-manager and scheduler keep the self-signed certificates of their health ports. */
  servingCertDir: string;
}

export interface ComponentCommand {
  id: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';
  command: string;
  args: string[];
}

/** Where the API server answers. */
export function serverUrl(address: string, port: number): string {
  return address.includes(':') ? `https://[${address}]:${port}` : `https://${address}:${port}`;
}

/** The service-account token issuer: the in-cluster name of the API server. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Two service ranges (IPv4,IPv6) need 1.20's alpha dual-stack feature on the API server and controller-manager. */
function dualStackFlags(layout: ControlPlaneLayout): string[] {
  return layout.serviceClusterIpRange.includes(',') ? ['--feature-gates=IPv6DualStack=true'] : [];
}

export function etcdCommand(binaries: ControlPlaneBinaries, layout: ControlPlaneLayout): ComponentCommand {
  const client = `http://127.0.0.1:${layout.etcdClientPort}`;
  const peer = `http://127.0.0.1:${layout.etcdPeerPort}`;
  return {
    id: 'etcd',
    command: binaries.etcd,
    args: [
      '--name=kubetun',
      `--data-dir=${layout.etcdDataDir}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=kubetun=${peer}`,
    ],
  };
}

export function apiserverCommand(binaries: ControlPlaneBinaries, layout: ControlPlaneLayout, pki: ControlPlanePki): ComponentCommand {
  return {
    id: 'kube-apiserver',
    command: binaries.kubeApiserver,
    args: [
      `--advertise-address=${layout.address}`,
      `--bind-address=${layout.address}`,
      `--secure-port=${layout.securePort}`,
      '--insecure-port=0',
      `--etcd-servers=http://127.0.0.1:${layout.etcdClientPort}`,
      `--service-cluster-ip-range=${layout.serviceClusterIpRange}`,
      ...dualStackFlags(layout),
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
      `--client-ca-file=${pki.ca.certFile}`,
      // Without a request-header CA the controller-manager and scheduler log an error every few seconds. Only a
      // certificate named front-proxy-client may set these headers, and none is issued.
      `--requestheader-client-ca-file=${pki.ca.certFile}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--tls-cert-file=${pki.apiserver.certFile}`,
      `--tls-private-key-file=${pki.apiserver.keyFile}`,
      `--kubelet-client-certificate=${pki.apiserverKubeletClient.certFile}`,
      `--kubelet-client-key=${pki.apiserverKubeletClient.keyFile}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      `--service-account-key-file=${pki.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountPrivateKey}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      '--profiling=false',
    ],
  };
}

export function controllerManagerCommand(binaries: ControlPlaneBinaries, layout: ControlPlaneLayout, pki: ControlPlanePki): ComponentCommand {
  return {
    id: 'kube-controller-manager',
    command: binaries.kubeControllerManager,
    args: [
      `--kubeconfig=${layout.controllerManagerKubeconfig}`,
      `--authentication-kubeconfig=${layout.controllerManagerKubeconfig}`,
      `--authorization-kubeconfig=${layout.controllerManagerKubeconfig}`,
      '--bind-address=127.0.0.1',
      '--port=0',
      `--cert-dir=${layout.servingCertDir}`,
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki.serviceAccountPrivateKey}`,
      `--root-ca-file=${pki.ca.certFile}`,
      `--cluster-signing-cert-file=${pki.ca.certFile}`,
      `--cluster-signing-key-file=${pki.ca.keyFile}`,
      `--service-cluster-ip-range=${layout.serviceClusterIpRange}`,
      ...dualStackFlags(layout),
      // Nodes bring their own spec.podCIDR (the sandbox kubelet sets it), so none is allocated here.
      '--allocate-node-cidrs=false',
      '--profiling=false',
    ],
  };
}

export function schedulerCommand(binaries: ControlPlaneBinaries, layout: ControlPlaneLayout): ComponentCommand {
  return {
    id: 'kube-scheduler',
    command: binaries.kubeScheduler,
    args: [
      `--kubeconfig=${layout.schedulerKubeconfig}`,
      `--authentication-kubeconfig=${layout.schedulerKubeconfig}`,
      `--authorization-kubeconfig=${layout.schedulerKubeconfig}`,
      '--bind-address=127.0.0.1',
      '--port=0',
      `--cert-dir=${layout.servingCertDir}`,
      '--leader-elect=false',
      '--profiling=false',
    ],
  };
}
