// Tries connections from wherever `run` runs a command (a network namespace) and reports how each ended and how
// fast: a port nothing serves must be refused at once, not left to a timeout.

export interface ProbeTarget {
  protocol: 'tcp' | 'udp';
  host: string;
  port: number;
}

export interface ProbeOutcome {
  /** 'connected' (TCP), 'answered' (UDP), 'timeout', or the error's code (ECONNREFUSED, EHOSTUNREACH…). */
  outcome: string;
  ms: number;
}

export type ProbeRunner = (command: string, args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

// Run with `node -e`, so timings leave out node's start. UDP sends one datagram on a connected socket: an ICMP
// port unreachable comes back as ECONNREFUSED on it.
const SCRIPT = `
const net = require('node:net');
const dgram = require('node:dgram');
const targets = JSON.parse(process.argv[1]);
const waitMs = Number(process.argv[2]);
const probe = (t) => new Promise((resolve) => {
  const started = Date.now();
  const udp = t.protocol === 'udp';
  const socket = udp ? dgram.createSocket(net.isIPv6(t.host) ? 'udp6' : 'udp4') : net.connect(t.port, t.host);
  const end = (outcome) => {
    clearTimeout(timer);
    socket.removeAllListeners();
    socket.on('error', () => {});
    if (udp) socket.close(); else socket.destroy();
    resolve({ outcome, ms: Date.now() - started });
  };
  const timer = setTimeout(() => end('timeout'), waitMs);
  socket.on('error', (error) => end(error.code ?? error.message));
  if (udp) {
    socket.on('message', () => end('answered'));
    socket.connect(t.port, t.host, () => socket.send('probe'));
  } else {
    socket.on('connect', () => end('connected'));
  }
});
Promise.all(targets.map(probe)).then((outcomes) => console.log(JSON.stringify(outcomes)));
`;

/** One outcome per target, probed at once; each waits at most `waitMs`. */
export async function probeConnections(run: ProbeRunner, targets: readonly ProbeTarget[], waitMs: number): Promise<ProbeOutcome[]> {
  const result = await run(process.execPath, ['-e', SCRIPT, JSON.stringify(targets), String(waitMs)]);
  if (result.code !== 0) throw new Error(`the connection probe failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as ProbeOutcome[];
}
