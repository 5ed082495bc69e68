// The image table: the sandbox has no container images, so an image name stands for a command line on the host.
// A container's command is its spec.command, else the image's entrypoint; its arguments are spec.args, else the
// image's default arguments (only when the entrypoint is the image's too, as a container runtime does).

import { readFileSync } from 'node:fs';
import type { Container } from './types.js';

export interface ImageEntry {
  entrypoint: string[];
  args: string[];
}

export type ImageTable = ReadonlyMap<string, ImageEntry>;

export class ImageTableError extends Error {
  override readonly name = 'ImageTableError';
}

/** The image's repository: its name without a tag or digest ("busybox:1.36" → "busybox"). */
export function imageRepository(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  // A colon before the last slash belongs to a registry's port ("registry:5000/app").
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/** Parses the table's JSON text: {"repo": ["entrypoint", "arg"…]} or {"repo": {"entrypoint": […], "args": […]}}. */
export function parseImageTable(text: string, source: string): ImageTable {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ImageTableError(`the image table ${source} is not JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ImageTableError(`the image table ${source} must be a JSON object of image name → command line`);
  }
  const table = new Map<string, ImageEntry>();
  for (const [image, value] of Object.entries(raw)) {
    if (isStringArray(value) && value.length > 0) {
      table.set(image, { entrypoint: value.slice(0, 1), args: value.slice(1) });
      continue;
    }
    const entry = value as { entrypoint?: unknown; args?: unknown } | null;
    if (entry !== null && typeof entry === 'object' && isStringArray(entry.entrypoint) && entry.entrypoint.length > 0 && (entry.args === undefined || isStringArray(entry.args))) {
      table.set(image, { entrypoint: entry.entrypoint, args: entry.args ?? [] });
      continue;
    }
    throw new ImageTableError(
      `the image table ${source} has a bad entry for "${image}": give ["entrypoint", "arg"…] or {"entrypoint": [...], "args": [...]}`,
    );
  }
  return table;
}

export function loadImageTable(file: string | undefined): ImageTable {
  if (file === undefined) return new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ImageTableError(`cannot read the image table ${file}: ${(error as Error).message}`);
  }
  return parseImageTable(text, file);
}

export type ResolvedCommand = { ok: true; argv: string[] } | { ok: false; reason: 'ErrImagePull'; message: string };

/** The command line of `container`, or why it has none. */
export function resolveCommand(container: Container, table: ImageTable, tableFile: string | undefined): ResolvedCommand {
  const image = container.image ?? '';
  const entry = table.get(imageRepository(image)) ?? table.get(image);
  const hasCommand = container.command !== undefined && container.command.length > 0;
  if (hasCommand) return { ok: true, argv: [...container.command!, ...(container.args ?? [])] };
  if (entry === undefined) {
    const where = tableFile === undefined ? 'no image table was given (--image-map)' : `it is not in the image table ${tableFile}`;
    return {
      ok: false,
      reason: 'ErrImagePull',
      message: `image "${image}" cannot be run: ${where}; add "${imageRepository(image)}" to the table or give the container a command`,
    };
  }
  return { ok: true, argv: [...entry.entrypoint, ...(container.args ?? entry.args)] };
}
