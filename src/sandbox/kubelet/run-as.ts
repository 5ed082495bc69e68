// Who a container's process runs as, from the pod's and the container's securityContext (the container's wins),
// as the kubelet and runtime decide it: runAsUser/runAsGroup become the process's uid and gid (through setpriv,
// after the root-only mount prologue), runAsNonRoot refuses to start what would run as root (sandbox images have
// no USER: without runAsUser they run as root), allowPrivilegeEscalation false is no_new_privs, and dropping ALL
// capabilities empties the bounding set. The pod's fsGroup is the process's one supplementary group, so that it
// reads the volumes shared with that group.

import type { Container, PodSpec } from './types.js';

export type RunAs = { ok: true; prefix: string[] } | { ok: false; reason: 'CreateContainerConfigError'; message: string };

/** The command words to put before the container's command line (none for a root container with nothing to drop). */
export function runAsPrefix(pod: Pick<PodSpec, 'securityContext'>, container: Pick<Container, 'name' | 'securityContext'>): RunAs {
  const own = container.securityContext ?? {};
  const podContext = pod.securityContext ?? {};
  const uid = own.runAsUser ?? podContext.runAsUser;
  const gid = own.runAsGroup ?? podContext.runAsGroup;
  const nonRoot = own.runAsNonRoot ?? podContext.runAsNonRoot ?? false;
  const fsGroup = podContext.fsGroup;
  for (const [field, id] of [['runAsUser', uid], ['runAsGroup', gid], ['fsGroup', fsGroup]] as const) {
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id <= 0xfffffffe)) {
      return { ok: false, reason: 'CreateContainerConfigError', message: `container ${container.name}: securityContext.${field} ${id} is not a uid/gid` };
    }
  }
  if (nonRoot && (uid === undefined || uid === 0)) {
    const why = uid === undefined ? 'has no runAsUser, so it would run as root (sandbox images have no USER)' : 'has runAsUser 0';
    return { ok: false, reason: 'CreateContainerConfigError', message: `container ${container.name} has runAsNonRoot and ${why}: set a non-zero runAsUser` };
  }
  const options: string[] = [];
  const groups = fsGroup === undefined ? '--clear-groups' : `--groups=${fsGroup}`;
  if (uid !== undefined && uid !== 0) options.push(`--reuid=${uid}`, `--regid=${gid ?? uid}`, groups);
  else if (gid !== undefined) options.push(`--regid=${gid}`, groups);
  else if (fsGroup !== undefined) options.push(groups);
  if (own.allowPrivilegeEscalation === false) options.push('--no-new-privs');
  if (own.capabilities?.drop?.includes('ALL')) options.push('--bounding-set=-all');
  return { ok: true, prefix: options.length === 0 ? [] : ['setpriv', ...options, '--'] };
}
