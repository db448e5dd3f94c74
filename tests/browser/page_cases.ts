/**
 * What the Chromium test files share: when they run, and opening a page that
 * keeps its console for the failure report.
 */

import {
  type BrowserPage,
  CHROMIUM_PATH,
  chromiumInstalled,
  startBrowserPage,
} from "./browser_page.ts";

/** Page console lines kept for a failure report. */
const CONSOLE_LINES = 200;

/** Browser tests are skipped without Chromium, except under CI. */
export const CHROMIUM_IGNORED = !chromiumInstalled() &&
  Deno.env.get("CI") === undefined;

/** Fails under CI when Chromium is missing. */
export function needChromium(): void {
  if (!chromiumInstalled()) {
    throw new Error(
      `Chromium is needed under CI and is not at ${CHROMIUM_PATH}: ` +
        "apt-get install -y --no-install-recommends chromium",
    );
  }
}

/** A page and its last console lines. */
export interface ConsolePage<Api> {
  /** The page. */
  page: BrowserPage<Api>;
  /** Its last console lines, oldest first. */
  lines: readonly string[];
  /** An error for `what`, with the page's console in its message. */
  failed(what: string, cause: unknown): Error;
}

/**
 * Opens a page running `entry`, keeping its last console lines: a module
 * that fails to load says why only there.
 */
export async function openConsolePage<Api>(
  entry: URL,
  callTimeoutMs: number,
): Promise<ConsolePage<Api>> {
  const lines: string[] = [];
  const failed = (what: string, cause: unknown) =>
    new Error(`${what}; the page's console:\n${lines.join("\n")}`, { cause });
  try {
    const page = await startBrowserPage<Api>({
      onEvent: () => {},
      onConsole: (line) => {
        lines.push(line);
        if (lines.length > CONSOLE_LINES) lines.shift();
      },
      entry,
      callTimeoutMs,
    });
    return { page, lines, failed };
  } catch (error) {
    throw failed(`the page ${entry.pathname} did not start`, error);
  }
}
