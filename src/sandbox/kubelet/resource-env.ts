// The value of an env var's resourceFieldRef (the downward API for a container's cpu/memory limits and requests),
// as the kubelet works it out: the quantity divided by the divisor, rounded up; a missing limit is the node's
// allocatable amount, a missing request is the limit (as the API server defaults it) or 0.

import { ContainerConfigError } from './env-sources.js';
import { NODE_CAPACITY } from './node.js';
import type { Container, ResourceFieldRef } from './types.js';

const SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity ("500m", "1.5Gi", "2e3", 4) as a number of base units, or null when it is not one. */
export function parseQuantity(quantity: string | number): number | null {
  if (typeof quantity === 'number') return Number.isFinite(quantity) ? quantity : null;
  const match = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/.exec(quantity.trim());
  if (match === null) return null;
  const number = Number(match[1]);
  if (match[2] !== undefined) return number * 10 ** Number(match[2].slice(1));
  return number * SUFFIXES[match[3] ?? '']!;
}

const RESOURCES = ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage'] as const;

function amount(container: Container, kind: 'limits' | 'requests', resource: string): number {
  const limit = container.resources?.limits?.[resource];
  const request = container.resources?.requests?.[resource];
  const given = kind === 'limits' ? (limit ?? NODE_CAPACITY[resource as keyof typeof NODE_CAPACITY]) : (request ?? limit ?? 0);
  const value = parseQuantity(given ?? 0);
  if (value === null) throw new ContainerConfigError(`container ${container.name}: ${kind}.${resource} "${String(given)}" is not a quantity`);
  return value;
}

/** The env value of `ref` for a container of `containers` (the one named, else `own`). */
export function resourceFieldValue(ref: ResourceFieldRef, own: Container, containers: readonly Container[]): string {
  const container = ref.containerName === undefined || ref.containerName === '' ? own : containers.find((c) => c.name === ref.containerName);
  if (container === undefined) throw new ContainerConfigError(`resourceFieldRef names container "${ref.containerName}", which the pod does not have`);
  if (!(RESOURCES as readonly string[]).includes(ref.resource)) {
    throw new ContainerConfigError(`resourceFieldRef resource "${ref.resource}" is not supported: use one of ${RESOURCES.join(', ')}`);
  }
  const [kind, resource] = ref.resource.split('.') as ['limits' | 'requests', string];
  const divisor = parseQuantity(ref.divisor ?? 1);
  if (divisor === null || divisor <= 0) throw new ContainerConfigError(`resourceFieldRef divisor "${String(ref.divisor)}" is not a positive quantity`);
  const value = amount(container, kind, resource);
  // cpu in whole millicores, others in whole units (as the kubelet's MilliValue/Value), then rounded up; the small
  // tolerance keeps 0.1/0.001 from becoming 101.
  const scale = resource === 'cpu' ? 1000 : 1;
  const units = Math.ceil(value * scale - 1e-9);
  const per = Math.ceil(divisor * scale - 1e-9);
  return String(Math.ceil(units / per));
}
