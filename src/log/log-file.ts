// A daemon's log file: created 0600 (it may name the user's clusters and namespaces), opened without following a
// link planted in its place, and tightened to 0600 when an older kubetun left it readable by others.
import { constants, createWriteStream, fchmodSync, openSync } from 'node:fs';
import { createLogger, isLogLevel, type Logger } from './logger.js';

export interface LogFile {
  log: Logger;
  /** Flushes and closes the file, then calls `done`. */
  close(done: () => void): void;
}

export function openLogFile(path: string, level = process.env.KUBETUN_LOG_LEVEL): LogFile {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  fchmodSync(fd, 0o600);
  const stream = createWriteStream('', { fd });
  const log = createLogger(level !== undefined && isLogLevel(level) ? level : 'info', (line) => stream.write(line));
  return { log, close: (done) => stream.end(done) };
}
