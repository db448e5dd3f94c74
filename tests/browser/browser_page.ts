/**
 * The test process's handle on a headless Chromium page that runs the
 * browser backend: it starts the driver process (`driver.ts`, which runs
 * playwright) and turns calls and events into JSON lines to and from it.
 *
 * @example Talk to the page
 * ```ts ignore
 * import { startBrowserPage } from "./browser_page.ts";
 *
 * await using page = await startBrowserPage({ onEvent: console.log });
 * const peer = await page.call("createPeer");
 * ```
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import { TimeoutError } from "../../core/errors.ts";
import { jsonLines } from "./json_lines.ts";
import type { PageApi, PageEvent } from "./page_entry.ts";

/** Where Debian's `chromium` package puts the browser; `CHROMIUM` overrides. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/** Whether the Chromium executable exists here. */
export function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
}

/** The parameters of method `K` of a page API. */
type ArgsOf<Api, K extends keyof Api> = Api[K] extends
  (...args: infer P) => unknown ? P : never;
/** What method `K` of a page API resolves to. */
type ResultOf<Api, K extends keyof Api> = Api[K] extends
  (...args: never[]) => infer R ? Awaited<R> : never;

/**
 * A Chromium page running the browser backend, driven from Deno. `Api` is
 * the page's `p2prtcPage`: `PageApi` for `page_entry.ts`, or another
 * entry's.
 */
export interface BrowserPage<Api = PageApi> extends AsyncDisposable {
  /** The browser's version string. */
  readonly version: string;
  /**
   * Calls a method of the page's `p2prtcPage`. Arguments and results cross
   * as JSON.
   */
  call<K extends keyof Api & string>(
    method: K,
    ...args: ArgsOf<Api, K>
  ): Promise<ResultOf<Api, K>>;
  /** Closes the page, the browser and the driver process. */
  close(): Promise<void>;
}

/** Options for {@linkcode startBrowserPage}. */
export interface StartBrowserPageOptions {
  /** Receives each event the page emits. */
  onEvent: (event: PageEvent) => void;
  /** Receives the page's console lines; default: dropped. */
  onConsole?: (line: string) => void;
  /** How long starting may take, and closing. Default 30 s. */
  timeoutMs?: number;
  /** How long one call may take. Default 90 s. */
  callTimeoutMs?: number;
  /** Chromium flags beyond the usual ones, such as `--force-fieldtrials`. */
  chromiumArgs?: readonly string[];
  /**
   * The module the page runs instead of `page_entry.ts`; it must set
   * `globalThis.p2prtcPage` to an `Api`.
   */
  entry?: URL;
}

const DRIVER = new URL("./driver.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);

/** One line from the driver. */
interface DriverMessage {
  ready?: { version: string };
  failed?: string;
  id?: number;
  result?: unknown;
  error?: string;
  event?: PageEvent;
  console?: string;
}

/**
 * Starts the driver process and waits until its page is ready. Rejects,
 * with the driver's reason, if Chromium cannot be launched or the page
 * cannot be loaded.
 */
export async function startBrowserPage<Api = PageApi>(
  options: StartBrowserPageOptions,
): Promise<BrowserPage<Api>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const callTimeoutMs = options.callTimeoutMs ?? 90_000;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      `--config=${CONFIG.pathname}`,
      DRIVER.pathname,
      ...options.chromiumArgs ?? [],
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
    ...options.entry === undefined
      ? {}
      : { env: { P2PRTC_PAGE_ENTRY: options.entry.href } },
  }).spawn();
  const stdin = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const calls = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  let lastId = 0;
  const ready = Promise.withResolvers<string>();

  const settle = (message: DriverMessage) => {
    if (message.event) options.onEvent(message.event);
    else if (message.console !== undefined) {
      options.onConsole?.(message.console);
    } else if (message.ready) ready.resolve(message.ready.version);
    else if (message.failed !== undefined) {
      ready.reject(
        new Error(`the browser page did not open: ${message.failed}`),
      );
    } else if (message.id !== undefined) {
      const call = calls.get(message.id);
      calls.delete(message.id);
      if (message.error !== undefined) call?.reject(new Error(message.error));
      else call?.resolve(message.result);
    }
  };
  // Never rejects: whatever ends it, every waiter is told.
  const reading = (async () => {
    let reason = new Error("the browser driver process ended");
    try {
      for await (const line of jsonLines(child.stdout)) {
        settle(line as DriverMessage);
      }
    } catch (error) {
      reason = new Error("reading from the browser driver failed", {
        cause: error,
      });
    }
    ready.reject(reason);
    for (const call of calls.values()) call.reject(reason);
    calls.clear();
  })();

  let closing: Promise<void> | null = null;
  const close = () =>
    closing ??= (async () => {
      await stdin.close().catch(() => {});
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }, timeoutMs);
      try {
        await child.status;
        await reading;
      } finally {
        clearTimeout(timer);
      }
    })();

  const timer = setTimeout(
    () =>
      ready.reject(
        new TimeoutError(`the browser page did not open in ${timeoutMs} ms`),
      ),
    timeoutMs,
  );
  let version: string;
  try {
    version = await ready.promise;
  } catch (error) {
    await close();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  return {
    version,
    call(method, ...args) {
      const id = ++lastId;
      const { promise, resolve, reject } = Promise.withResolvers<unknown>();
      calls.set(id, { resolve, reject });
      // Keeps a test bounded even if the page never answers.
      const timer = setTimeout(() => {
        calls.delete(id);
        reject(new TimeoutError(`the page did not answer ${method} in time`));
      }, callTimeoutMs);
      stdin.write(encoder.encode(JSON.stringify({ id, method, args }) + "\n"))
        .catch(reject);
      // deno-lint-ignore no-explicit-any
      return promise.finally(() => clearTimeout(timer)) as Promise<any>;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
