// The connection's public vocabulary: its RFC 9293 states, why it closed, and the events it reports.

export type TcpState =
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT'
  | 'CLOSED';

export type TcpCloseReason = 'closed' | 'reset' | 'refused' | 'timeout' | 'aborted' | 'unreachable';

export interface TcpConnectionEvents {
  established?(): void;
  /** In-order data became available to read(). */
  readable?(): void;
  /** Send-buffer space freed after a write() accepted less than offered. */
  writable?(): void;
  /** The peer's FIN arrived in order (all data before it is readable). */
  remoteClosed?(): void;
  /** Once, when the connection reaches CLOSED (TIME-WAIT ends in 'closed'). */
  closed?(reason: TcpCloseReason): void;
}
