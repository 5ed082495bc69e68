// Who a container's process runs as, from the pod's and the container's securityContext (the container's wins),
// as the kubelet and runtime decide it: runAsUser/runAsGroup become the process's uid and gid (through setpriv,
// after the root-only mount prologue), runAsNonRoot refuses to start what would run as root (sandbox images have
// no USER: without runAsUser they run as root), allowPrivilegeEscalation false is no_new_privs, and capabilities
// shape the bounding set: dropped ones leave it (ALL empties it), added ones stay in it even after ALL is dropped (the
// agent's init container: drop ALL, add NET_ADMIN for nftables); a root container keeps all of them otherwise, so an
// add alone changes nothing. The pod's fsGroup is the process's one supplementary group, so that it
// reads the volumes shared with that group.

import type { Container, PodSpec } from './types.js';

export type RunAs = { ok: true; prefix: string[] } | { ok: false; reason: 'CreateContainerConfigError'; message: string };

// A capability as Kubernetes names it (NET_ADMIN or CAP_NET_ADMIN); setpriv wants it in lower case without CAP_.
const CAPABILITY = /^(?:CAP_)?([A-Z][A-Z_]*)$/;

type BoundingSet = { ok: true; option: string | null } | { ok: false; reason: 'CreateContainerConfigError'; message: string };

/** setpriv's --bounding-set option for the container's capabilities, or none when the set stays whole. */
function boundingSet(name: string, capabilities: { add?: string[]; drop?: string[] }): BoundingSet {
  const dropAll = capabilities.drop?.includes('ALL') === true;
  const lower = (list: string[] | undefined): string[] | string => {
    const out: string[] = [];
    for (const cap of list ?? []) {
      if (cap === 'ALL') continue;
      const match = CAPABILITY.exec(cap);
      if (match === null) return cap;
      out.push(match[1]!.toLowerCase());
    }
    return out;
  };
  const dropped = lower(capabilities.drop);
  const added = lower(capabilities.add);
  if (typeof dropped === 'string' || typeof added === 'string') {
    const bad = typeof dropped === 'string' ? dropped : added;
    return { ok: false, reason: 'CreateContainerConfigError', message: `container ${name}: "${bad}" is not a capability name (e.g. NET_ADMIN)` };
  }
  const changes = [...(dropAll ? ['-all'] : []), ...dropped.map((c) => `-${c}`), ...(dropAll ? added.map((c) => `+${c}`) : [])];
  return { ok: true, option: changes.length === 0 ? null : `--bounding-set=${changes.join(',')}` };
}

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
  const bounding = boundingSet(container.name, own.capabilities ?? {});
  if (!bounding.ok) return bounding;
  if (bounding.option !== null) options.push(bounding.option);
  return { ok: true, prefix: options.length === 0 ? [] : ['setpriv', ...options, '--'] };
}
