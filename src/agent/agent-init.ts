// `kubetun agent-init`: the init container that takes over numbered ports. Traffic arriving at the pod for an
// app port is redirected (nat prerouting) to the agent's port, for IPv4 and IPv6. Only prerouting: what the agent
// itself sends to 127.0.0.1:containerPort goes through output and reaches the app unredirected. The table is
// replaced whole in one nft transaction, so running again (a restarted init container) changes nothing.

import { spawn } from 'node:child_process';
import type { AgentPortConfig } from './agent-contract.js';

export const NFT_TABLE = 'kubetun_agent';
const NFT_TIMEOUT_MS = 10_000;
/** nft's own messages are short; more is noise. */
const MAX_NFT_OUTPUT = 8 * 1024;

export class AgentInitError extends Error {
  override readonly name = 'AgentInitError';
}

/** The nft script for the ports taken over by an init container (none: the table is only removed). */
export function agentRuleset(ports: readonly AgentPortConfig[]): string {
  const redirected = ports.filter((p) => p.takeover === 'init-container');
  const lines: string[] = [];
  for (const family of ['ip', 'ip6']) {
    // Declaring the table first makes the delete valid whether or not it existed.
    lines.push(`table ${family} ${NFT_TABLE}`, `delete table ${family} ${NFT_TABLE}`);
    if (redirected.length === 0) continue;
    lines.push(`table ${family} ${NFT_TABLE} {`, '\tchain prerouting {', '\t\ttype nat hook prerouting priority dstnat; policy accept;');
    for (const port of redirected) {
      lines.push(`\t\t${port.protocol.toLowerCase()} dport ${port.containerPort} redirect to :${port.agentPort}`);
    }
    lines.push('\t}', '}');
  }
  return `${lines.join('\n')}\n`;
}

/** Runs `nft -f -` with `script`; rejects with AgentInitError saying what failed. */
export function applyRuleset(script: string, nft = 'nft'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(nft, ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: NFT_TIMEOUT_MS });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < MAX_NFT_OUTPUT) stderr += chunk;
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'ENOENT' ? `${nft} is not installed in the agent image` : error.message;
      reject(new AgentInitError(`cannot run nft: ${why}`));
    });
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const how = signal !== null ? `was killed (${signal})` : `exited with ${code}`;
        reject(new AgentInitError(`nft ${how}: ${stderr.trim().slice(0, MAX_NFT_OUTPUT) || 'no message'} (the init container needs NET_ADMIN)`));
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(script);
  });
}
