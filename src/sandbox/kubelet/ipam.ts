// Pod addresses: the lowest free host of each pod CIDR, skipping the network address, the gateway (the first
// host, on the bridge) and the IPv4 broadcast address. Allocations are kept in a JSON file so that a restarted
// kubelet does not hand out an address a surviving pod still has.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatIp, parseIp, parsePrefix, prefixContains, type IpPrefix } from '../../netstack/wire/ip-address.js';

function toBig(address: Uint8Array): bigint {
  let n = 0n;
  for (const byte of address) n = (n << 8n) | BigInt(byte);
  return n;
}

function fromBig(n: bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** The first usable host of `prefix` (network + 1): the pods' gateway, on the bridge. */
export function gatewayOf(prefix: IpPrefix): string {
  return formatIp(fromBig(toBig(prefix.address) + 1n, prefix.address.length));
}

/** The first and last address a pod may get in `prefix`, or null when the prefix has no room for a pod. */
export function podRange(prefix: IpPrefix): { first: bigint; last: bigint } | null {
  const bits = prefix.address.length * 8;
  const size = 1n << BigInt(bits - prefix.length);
  const network = toBig(prefix.address);
  const first = network + 2n;
  // IPv4 keeps its broadcast address out; IPv6 has none.
  const last = network + size - (prefix.address.length === 4 ? 2n : 1n);
  return first <= last ? { first, last } : null;
}

interface IpamFile {
  /** address → owner (a pod's uid). */
  allocations: Record<string, string>;
}

export class IpamExhaustedError extends Error {
  override readonly name = 'IpamExhaustedError';
}

export class Ipam {
  private readonly prefixes: IpPrefix[];
  private readonly allocations: Map<string, string>;

  /** `cidrs`: the node's pod CIDRs; `file`: where allocations persist (read if it exists). */
  constructor(
    cidrs: readonly string[],
    private readonly file: string,
  ) {
    this.prefixes = cidrs.map((c) => parsePrefix(c));
    const saved = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as IpamFile) : { allocations: {} };
    this.allocations = new Map(Object.entries(saved.allocations));
  }

  /** The addresses of `owner`, one per pod CIDR, allocating those it does not have yet. */
  allocate(owner: string): string[] {
    const result = this.prefixes.map((prefix) => this.existing(owner, prefix) ?? this.pick(owner, prefix));
    this.save();
    return result;
  }

  release(owner: string): void {
    for (const [address, holder] of this.allocations) if (holder === owner) this.allocations.delete(address);
    this.save();
  }

  /** Frees every address whose owner is not in `owners` (pods that went while the kubelet was down). */
  retain(owners: ReadonlySet<string>): void {
    for (const [address, holder] of this.allocations) if (!owners.has(holder)) this.allocations.delete(address);
    this.save();
  }

  owners(): Set<string> {
    return new Set(this.allocations.values());
  }

  private existing(owner: string, prefix: IpPrefix): string | undefined {
    for (const [address, holder] of this.allocations) {
      if (holder !== owner) continue;
      if (prefixContains(prefix, parseIp(address))) return address;
    }
    return undefined;
  }

  private pick(owner: string, prefix: IpPrefix): string {
    const range = podRange(prefix);
    const bytes = prefix.address.length;
    if (range !== null) {
      for (let n = range.first; n <= range.last; n++) {
        const address = formatIp(fromBig(n, bytes));
        if (!this.allocations.has(address)) {
          this.allocations.set(address, owner);
          return address;
        }
      }
    }
    throw new IpamExhaustedError(
      `pod CIDR ${formatIp(prefix.address)}/${prefix.length} has no free address left (${this.allocations.size} allocated): delete pods or give the node a larger --pod-cidr`,
    );
  }

  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const body: IpamFile = { allocations: Object.fromEntries(this.allocations) };
    writeFileSync(`${this.file}.tmp`, JSON.stringify(body, null, 2) + '\n');
    renameSync(`${this.file}.tmp`, this.file);
  }
}
