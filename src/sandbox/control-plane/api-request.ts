// HTTPS requests to the API server from inside a network namespace: the host's processes cannot reach an
// address there, so `requestApiInNetns` runs this file as a program under `ip netns exec`. The program reads a
// batch of requests as JSON on stdin, makes them in order with the given client certificate, and prints the
// answers as JSON. With `untilStatus` it repeats the first request until that status comes (a readiness wait).

import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCommand } from '../host-commands.js';
import { ControlPlaneError } from './control-plane-errors.js';

export interface ApiCredentials {
  /** `https://address:port`. */
  server: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query, e.g. `/api/v1/namespaces`. */
  path: string;
  /** Sent as JSON. */
  body?: unknown;
}

export interface ApiResponse {
  /** The HTTP status, or 0 when no answer came (the error is in `body`). */
  status: number;
  body: string;
}

export interface ApiBatch {
  credentials: ApiCredentials;
  requests: ApiRequest[];
  /** Repeat the first request until it answers with this status, or `timeoutMs` passes. */
  untilStatus?: number;
  timeoutMs: number;
  /** Stop repeating once this process has exited (the API server: no use waiting for a dead one). */
  watchPid?: number;
}

const REQUEST_TIMEOUT_MS = 5_000;
const RETRY_MS = 250;
// Room for node to start in the namespace and print after the batch's own deadline.
const PROCESS_SLACK_MS = 5_000;
const SCRIPT = fileURLToPath(import.meta.url);

interface Tls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function send(credentials: ApiCredentials, tls: Tls, req: ApiRequest, timeoutMs: number): Promise<ApiResponse> {
  const body = req.body === undefined ? undefined : JSON.stringify(req.body);
  return new Promise((resolve) => {
    const r = httpsRequest(
      new URL(req.path, credentials.server),
      {
        method: req.method,
        ...tls,
        timeout: timeoutMs,
        headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => resolve({ status: 0, body: e.message }));
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    r.on('error', (e) => resolve({ status: 0, body: e.message }));
    r.end(body);
  });
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Makes the batch's requests (in this process's namespace). */
export async function runBatch(batch: ApiBatch): Promise<ApiResponse[]> {
  const { credentials } = batch;
  const tls = { ca: readFileSync(credentials.caFile), cert: readFileSync(credentials.certFile), key: readFileSync(credentials.keyFile) };
  const deadline = Date.now() + batch.timeoutMs;
  const responses: ApiResponse[] = [];
  for (const [i, req] of batch.requests.entries()) {
    let response = await send(credentials, tls, req, Math.max(1, Math.min(REQUEST_TIMEOUT_MS, deadline - Date.now())));
    while (i === 0 && batch.untilStatus !== undefined && response.status !== batch.untilStatus) {
      if (Date.now() + RETRY_MS >= deadline) break;
      if (batch.watchPid !== undefined && !alive(batch.watchPid)) break;
      await sleep(RETRY_MS);
      response = await send(credentials, tls, req, Math.max(1, Math.min(REQUEST_TIMEOUT_MS, deadline - Date.now())));
    }
    responses.push(response);
  }
  return responses;
}

/** Runs the batch inside network namespace `netns` and returns one answer per request. */
export async function requestApiInNetns(netns: string, batch: ApiBatch): Promise<ApiResponse[]> {
  try {
    const result = await runCommand('ip', ['netns', 'exec', netns, process.execPath, SCRIPT], {
      input: JSON.stringify(batch),
      timeoutMs: batch.timeoutMs + PROCESS_SLACK_MS,
      allowFailure: true,
    });
    if (result.code !== 0) throw new Error(result.stderr.trim().slice(-300));
    return JSON.parse(result.stdout) as ApiResponse[];
  } catch (error) {
    throw new ControlPlaneError('REQUEST_FAILED', `could not reach the API server at ${batch.credentials.server} from namespace ${netns}: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const batch = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ApiBatch;
  process.stdout.write(`${JSON.stringify(await runBatch(batch))}\n`);
}

// Run as a program, not when imported.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
