// The error of a kubeconfig that cannot be used, in a module of its own: commands that only report it must not
// load @kubernetes/client-node (~80 MiB of memory) to recognise it.

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}
