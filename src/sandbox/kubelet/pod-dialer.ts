// A port-forward's connections to a pod, made the way a real kubelet makes them: to localhost:PORT inside the
// pod's network namespace (containerd enters the namespace; dockershim ran `nsenter -t PID -n socat - TCP4:localhost:PORT`),
// so a server that listens only on the pod's loopback is reached, and nothing crosses the pod network. Node cannot
// enter a namespace itself: a child in the namespace (pod-dialer-main.ts) connects and passes each socket back
// over IPC, so the kubelet then reads and writes the pod's socket directly, with no process or copy in between.
// The child is started on the first dial (a Node start: ~40 ms idle, more under load) and kept while dials come,
// so later dials cost a round trip over the channel; it stops after a minute without one, and with the pod.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

const DIALER = fileURLToPath(new URL('./pod-dialer-main.js', import.meta.url));
const DIAL_TIMEOUT_MS = 10_000;
const IDLE_MS = 60_000;

interface Pending {
  port: number;
  resolve(socket: Socket): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class PodDialer {
  private child: ChildProcess | undefined;
  private stderr = '';
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /** `netns`: the pod's `ip netns` name. */
  constructor(
    private readonly netns: string,
    private readonly idleMs = IDLE_MS,
  ) {}

  /** Connects to localhost:`port` in the pod's network namespace; rejects with the reason. */
  dial(port: number): Promise<Socket> {
    if (this.closed) return Promise.reject(new Error(`the pod's network namespace ${this.netns} is being removed`));
    clearTimeout(this.idleTimer);
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, new Error(`connect to localhost:${port} timed out after ${DIAL_TIMEOUT_MS / 1000} s`)), DIAL_TIMEOUT_MS);
      this.pending.set(id, { port, resolve, reject, timer });
      child.send({ id, port }, (error: Error | null) => {
        if (error !== null) this.settle(id, new Error(`cannot reach the dialer in ${this.netns}: ${error.message}`));
      });
    });
  }

  /** Stops the child (it holds the namespace open) and fails the dials under way. */
  close(): void {
    this.closed = true;
    this.stop(new Error(`the pod's network namespace ${this.netns} is being removed`));
  }

  private start(): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, DIALER], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child = child;
    this.stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-500)));
    child.on('message', (message: { id?: number; error?: string }, handle: unknown) => {
      if (typeof message.id !== 'number') return;
      if (message.error !== undefined || handle === undefined) this.settle(message.id, new Error(message.error ?? 'the dialer sent no socket'));
      else this.settle(message.id, null, handle as Socket);
    });
    const ended = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      this.failAll(new Error(`the dialer in ${this.netns} ${why}${this.stderr ? `: ${this.stderr.trim()}` : ''}`));
    };
    child.once('error', (error) => ended(`could not start (${error.message})`));
    child.once('exit', (code, signal) => ended(`exited with ${code ?? signal}`));
    // Neither the child nor its channel keeps the kubelet running.
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    return child;
  }

  private settle(id: number, error: Error | null, socket?: Socket): void {
    const pending = this.pending.get(id);
    if (pending === undefined) {
      socket?.destroy();
      return;
    }
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (error === null) pending.resolve(socket!);
    else pending.reject(error);
    if (this.pending.size === 0 && !this.closed) {
      this.idleTimer = setTimeout(() => this.stop(new Error('idle')), this.idleMs);
      this.idleTimer.unref();
    }
  }

  private stop(error: Error): void {
    clearTimeout(this.idleTimer);
    const child = this.child;
    this.child = undefined;
    child?.kill();
    this.failAll(error);
  }

  private failAll(error: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, error);
  }
}
