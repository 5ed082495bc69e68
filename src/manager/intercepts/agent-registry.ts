// The traffic agents connected now: each arrived (and was verified) on the agent listener, holds its ArriveAsAgent
// stream open, and is told the intercepts it applies. An agent is gone when that stream ends.

import { randomBytes } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { AgentDirectiveSchema, AgentInfo, AgentIntercept } from '../../gen/kubetun/manager/v1/manager_pb.js';
import { Allowance, LimitError } from '../manager-limits.js';

/** Names a workload in maps: `Deployment/default/echo`. */
export const workloadKey = (kind: string, namespace: string, name: string): string => `${kind}/${namespace}/${name}`;

type Directive = MessageInitShape<typeof AgentDirectiveSchema>;

export class LiveAgent {
  /** The intercept ids of the last directive: the only ones its streams may name. */
  private told = new Set<string>();
  private next: AgentIntercept[] | undefined;
  private wake: () => void = () => undefined;
  private ended = false;

  constructor(
    /** Random: agents send it on every stream (AGENT_HEADER), together with their connection it names them. */
    readonly id: string,
    readonly info: AgentInfo,
    readonly workload: string,
    /** The HTTP/2 connection it arrived on: its streams must come on the same one. */
    readonly connection: object | undefined,
    readonly pendingDials: Allowance,
  ) {}

  /** Whether the agent serves this app container port. */
  serves(containerPort: number): boolean {
    return this.info.ports.some((p) => p.containerPort === containerPort);
  }

  wasTold(interceptId: string): boolean {
    return this.told.has(interceptId);
  }

  /** Sends the complete list of intercepts the agent applies (replacing the last one). */
  tell(intercepts: AgentIntercept[]): void {
    this.told = new Set(intercepts.map((i) => i.id));
    this.next = intercepts;
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Its id, then every list it is told, until `end` or the signal. */
  async *directives(signal: AbortSignal): AsyncGenerator<Directive> {
    const onAbort = (): void => this.wake();
    signal.addEventListener('abort', onAbort);
    try {
      yield { agentId: this.id };
      while (!this.ended && !signal.aborted) {
        const next = this.next;
        if (next !== undefined) {
          this.next = undefined;
          yield { intercepts: next };
          continue;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

export class AgentRegistry {
  private readonly agents = new Map<string, LiveAgent>();

  constructor(private readonly limits: { agents: number; pendingDialsPerAgent: number }) {}

  get size(): number {
    return this.agents.size;
  }

  /** Registers a verified agent; throws LimitError at the cap. */
  add(info: AgentInfo, connection: object | undefined): LiveAgent {
    if (this.agents.size >= this.limits.agents) throw new LimitError(`The traffic manager holds its limit of ${this.limits.agents} agents.`);
    const agent = new LiveAgent(
      randomBytes(18).toString('base64url'),
      info,
      workloadKey(info.kind, info.namespace, info.workload),
      connection,
      new Allowance('pending connections per agent', this.limits.pendingDialsPerAgent),
    );
    this.agents.set(agent.id, agent);
    return agent;
  }

  remove(agent: LiveAgent): void {
    this.agents.delete(agent.id);
    agent.end();
  }

  /** The live agent with this id, if it arrived on `connection`. */
  onConnection(id: string, connection: object | undefined): LiveAgent | undefined {
    const agent = this.agents.get(id);
    return agent !== undefined && agent.connection === connection ? agent : undefined;
  }

  ofWorkload(key: string): LiveAgent[] {
    return [...this.agents.values()].filter((a) => a.workload === key);
  }
}
