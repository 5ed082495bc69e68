// What kube-proxy reads from the API, as ClusterRole rules: the sandbox grants them to kube-proxy's identity.

export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1beta1/endpointslices';

export const kubeProxyRules = [
  { apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
];
