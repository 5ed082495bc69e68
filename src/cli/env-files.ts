// The intercepted pod's environment written for the laptop: a dotenv file that `set -a; . FILE` and dotenv parsers
// read back exactly, or a JSON object. Both hold Secret values: mode 0600, written atomically (a reader never sees
// half a file, and no other user can open it at any moment).

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A name a shell (and so `set -a; . FILE`) accepts as a variable. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Values made only of these need no quotes. */
const PLAIN_VALUE = /^[A-Za-z0-9_.,:/@%+=-]*$/;

/** One value for a dotenv line: bare when plain, else double-quoted with \ " $ ` escaped (newlines kept as they are). */
export function dotenvValue(value: string): string {
  if (PLAIN_VALUE.test(value)) return value;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/**
 * The dotenv text of `environment`, names sorted; names a shell cannot take (Kubernetes allows `a.b`, `a-b`) are
 * left out and returned in `skipped`.
 */
export function formatDotenv(environment: Readonly<Record<string, string>>): { text: string; skipped: string[] } {
  const names = Object.keys(environment).sort();
  const skipped = names.filter((n) => !ENV_NAME.test(n));
  const lines = names.filter((n) => ENV_NAME.test(n)).map((n) => `${n}=${dotenvValue(environment[n]!)}\n`);
  return { text: lines.join(''), skipped };
}

/** Writes `text` to `file` with mode 0600 through a temporary file in the same folder and a rename. */
export function writePrivateFile(file: string, text: string): void {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, file);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
}

/** Writes the environment as dotenv; returns the names left out. */
export function writeDotenvFile(file: string, environment: Readonly<Record<string, string>>): string[] {
  const { text, skipped } = formatDotenv(environment);
  writePrivateFile(file, text);
  return skipped;
}

export function writeJsonEnvFile(file: string, environment: Readonly<Record<string, string>>): void {
  writePrivateFile(file, `${JSON.stringify(environment, Object.keys(environment).sort(), 2)}\n`);
}
