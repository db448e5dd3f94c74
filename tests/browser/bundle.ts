/**
 * Bundles TypeScript for a browser page with `deno bundle`, which Deno 2.9
 * has built in (it runs esbuild, fetched once from the npm registry as
 * `@esbuild/linux-x64`). No JSR and no extra dependency.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

/**
 * Bundles `entry` and everything it imports into one browser ES module at
 * `output`. Throws with deno's own output when bundling fails.
 */
export async function bundleForBrowser(
  entry: string | URL,
  output: string,
): Promise<void> {
  const entryPath = entry instanceof URL ? entry.pathname : entry;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=browser",
      "--format=esm",
      `--output=${output}`,
      entryPath,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // Its "experimental" banner and colours are noise in test output.
    env: { NO_COLOR: "1" },
  }).output();
  if (code !== 0) {
    const text = new TextDecoder();
    throw new Error(
      `deno bundle ${entryPath} failed (exit ${code}):\n` +
        text.decode(stdout) + text.decode(stderr),
    );
  }
}
