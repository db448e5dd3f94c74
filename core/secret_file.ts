/**
 * Owner-only files for secrets a node keeps across restarts (a DTLS
 * certificate's key today): read if present, create without ever replacing
 * a file another process wrote first, and replace atomically.
 *
 * Every write goes to a private temporary file beside the target (mode
 * 0o600, created new) and is then linked or renamed into place, so a reader
 * never sees a half-written secret.
 *
 * @module
 */

/**
 * `path` as a file system path; `file:` URLs are accepted too. Written here
 * rather than taken from `node:url`, which the core must not import: it is
 * absent in a browser, and a page that bundles the core would not load.
 * (UNC hosts in Windows file URLs are not supported.)
 */
export function secretPath(path: string | URL): string {
  if (!(path instanceof URL)) return path;
  if (path.protocol !== "file:") {
    throw new TypeError(`not a file: URL: ${path.href}`);
  }
  const decoded = decodeURIComponent(path.pathname);
  return Deno.build.os === "windows"
    ? decoded.slice(1).replaceAll("/", "\\")
    : decoded;
}

/** The file's bytes, or `undefined` when there is no file at `path`. */
export async function readIfExists(
  path: string,
): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Writes `bytes` to `path` with mode 0o600 unless a file is already there,
 * and tells whether it did. A file that appeared meanwhile (another process
 * starting at the same time) is never replaced.
 */
export async function writeIfAbsent(
  path: string,
  bytes: Uint8Array,
): Promise<boolean> {
  const temporary = await writeTemporary(path, bytes);
  try {
    await Deno.link(temporary, path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  } finally {
    await Deno.remove(temporary);
  }
}

/** Replaces the file at `path` with `bytes` (mode 0o600) in one step. */
export async function replaceFile(
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const temporary = await writeTemporary(path, bytes);
  try {
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

async function writeTemporary(
  path: string,
  bytes: Uint8Array,
): Promise<string> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(temporary, bytes, { mode: 0o600, createNew: true });
  return temporary;
}
