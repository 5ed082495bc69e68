// What the cluster DNS reads from the API, as ClusterRole rules: the sandbox grants them to its ServiceAccount.

export const clusterDnsRules = [
  { apiGroups: [''], resources: ['services', 'endpoints', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
];
