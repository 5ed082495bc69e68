// Tunables of one TCP connection. The stack builds one per listener or dial; connections never mutate it.

export interface TcpConfig {
  /** MSS we advertise (the stack derives it from the MTU). */
  mss: number;
  /** Largest payload per emitted segment; may exceed the peer's MSS only when the device segments (TSO).
   *  0 = the effective MSS. */
  sendSegmentMax: number;
  /** Bytes held for the application; the advertised window is the free space. */
  recvBufferSize: number;
  /** Cap on the advertised window (the TUN queue length limits what can be in flight towards us). */
  maxAdvertisedWindow: number;
  sendBufferSize: number;
  windowScaling: boolean;
  sack: boolean;
  timestamps: boolean;
  initialRtoMs: number;
  minRtoMs: number;
  maxRtoMs: number;
  /** Consecutive retransmission timeouts of the same data before the connection gives up. */
  maxRetransmissions: number;
  /** SYN (or SYN-ACK) retransmissions before the handshake gives up. */
  synRetries: number;
  /** 2MSL. */
  timeWaitMs: number;
  keepalive: { idleMs: number; intervalMs: number; probes: number } | null;
  /** Bytes held beyond a hole in the received sequence space. */
  maxOutOfOrderBytes: number;
  /** Disjoint blocks held beyond holes (each block is one SACK block; this bounds the holes). */
  maxOutOfOrderSegments: number;
  /** 0 = ACK every segment immediately. */
  delayedAckMs: number;
  congestion: 'newreno' | 'cubic';
}

/** Smallest MSS we take from a peer; a smaller announcement is raised to it. A peer announcing MSS 1..47 made
 *  Linux send a 40-byte header per byte of data (CVE-2019-11479; Linux's floor, tcp_min_snd_mss, is 48).
 *  536 is the MSS assumed when none is announced (RFC 9293 §3.7.1): every IPv4 host must take a 576-byte
 *  datagram (RFC 1122 §3.3.2) and every IPv6 host 1280 bytes, so no conforming peer is cut off, while the
 *  header overhead stays under 8 % (40 of 576 bytes) whatever the peer announces. */
export const MIN_PEER_MSS = 536;

export type TcpConfigErrorCode = 'TCP_CONFIG_INVALID';

export class TcpConfigError extends Error {
  readonly code: TcpConfigErrorCode = 'TCP_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'TcpConfigError';
  }
}

const MIB = 1024 * 1024;

const DEFAULTS: TcpConfig = {
  mss: 1460,
  sendSegmentMax: 0,
  recvBufferSize: 4 * MIB,
  maxAdvertisedWindow: 4 * MIB,
  sendBufferSize: 4 * MIB,
  windowScaling: true,
  sack: true,
  timestamps: true,
  initialRtoMs: 1000,
  minRtoMs: 200,
  maxRtoMs: 60_000,
  maxRetransmissions: 12,
  synRetries: 6,
  timeWaitMs: 60_000,
  keepalive: null,
  maxOutOfOrderBytes: 4 * MIB,
  maxOutOfOrderSegments: 64,
  delayedAckMs: 40,
  congestion: 'cubic',
};

/** Sane defaults with `overrides` applied; throws TcpConfigError on values a connection cannot work with. */
export function tcpConfig(overrides: Partial<TcpConfig> = {}): TcpConfig {
  const config: TcpConfig = { ...DEFAULTS, ...overrides };
  const positive: Array<keyof TcpConfig> = [
    'mss',
    'recvBufferSize',
    'maxAdvertisedWindow',
    'sendBufferSize',
    'initialRtoMs',
    'minRtoMs',
    'maxRtoMs',
    'maxOutOfOrderSegments',
  ];
  for (const key of positive) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new TcpConfigError(`TCP option ${key} must be a positive number (got ${String(value)}).`);
    }
  }
  if (config.mss < 64 || config.mss > 65495) {
    throw new TcpConfigError(`TCP option mss must be between 64 and 65495 (got ${config.mss}).`);
  }
  if (config.sendSegmentMax < 0 || config.sendSegmentMax > 65535) {
    throw new TcpConfigError(`TCP option sendSegmentMax must be 0..65535 (got ${config.sendSegmentMax}).`);
  }
  if (config.minRtoMs > config.maxRtoMs) {
    throw new TcpConfigError('TCP option minRtoMs must not exceed maxRtoMs.');
  }
  if (config.delayedAckMs < 0 || config.timeWaitMs < 0 || config.maxOutOfOrderBytes < 0) {
    throw new TcpConfigError('TCP options delayedAckMs, timeWaitMs and maxOutOfOrderBytes must not be negative.');
  }
  if (config.maxRetransmissions < 0 || config.synRetries < 0) {
    throw new TcpConfigError('TCP options maxRetransmissions and synRetries must not be negative.');
  }
  return config;
}
