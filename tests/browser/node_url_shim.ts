/**
 * Stands in for `node:url` in a browser page bundle. `core/identity.ts`
 * imports `fileURLToPath` from `node:url` at the top, for
 * `loadOrCreateIdentity`, so a page that bundles the core cannot load: the
 * browser cannot resolve `node:` (docs/known-issues.md).
 * `browser_direct_cases.ts` points the bundle's import here until the core
 * stops importing it. A page never reads key files, so this never runs.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

/** Always throws: a browser page has no file paths. */
export function fileURLToPath(url: string | URL): string {
  throw new Error(`no file paths in a browser page: ${String(url)}`);
}
