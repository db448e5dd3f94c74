/**
 * Opens a headless Chromium page that runs bundled p2prtc code, served from
 * 127.0.0.1 by `Deno.serve`, and drives it through playwright.
 *
 * Loopback ICE needs two things Chromium does not do by default (checked
 * with Chromium 156):
 * - `--allow-loopback-in-peer-connection` adds 127.0.0.1 and ::1 to the
 *   networks ICE gathers on; without it loopback is never a candidate.
 * - Microphone (or camera) permission for the page's origin. Without it a
 *   page may not enumerate network interfaces: Chromium gathers only on the
 *   default route and hides those addresses behind `<uuid>.local` mDNS names,
 *   and the loopback flag changes nothing. With it, real addresses appear,
 *   loopback included, and no mDNS is used, so neither
 *   `--disable-features=WebRtcHideLocalIpsWithMdns` (which only unhides the
 *   default-route addresses) nor a `getUserMedia` call is needed.
 *
 * The page still gathers on every interface; the browser backend's
 * `bindAddress: "127.0.0.1"` drops the other candidates before they are
 * reported, so the Deno peer only ever learns loopback ones.
 *
 * It runs in the driver process (`driver.ts`), because playwright-core
 * needs `--allow-all` under Deno.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import { type Browser, chromium } from "playwright-core";
import { CHROMIUM_PATH } from "./browser_page.ts";
import { bundleForBrowser } from "./bundle.ts";
import type { PageEvent } from "./page_entry.ts";

/**
 * The flags Chromium is started with: headless, quiet (no background
 * network, updates, sync or QUIC, so it contacts nothing), and loopback
 * candidates allowed (see the module documentation).
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
];

/** A page running bundled code, and everything opened to get it there. */
export interface OpenedPage extends AsyncDisposable {
  /** The browser's version string. */
  readonly version: string;
  /**
   * Calls a method of the page's `p2prtcPage` (see `PageApi`). Arguments
   * and results cross as JSON-like values; the driver relays them untyped.
   */
  call(method: string, args: unknown[]): Promise<unknown>;
  /** Closes the browser and the server and removes the temporary files. */
  close(): Promise<void>;
}

/** Options for {@linkcode openBrowserPage}. */
export interface OpenBrowserPageOptions {
  /** Receives each event the page emits. */
  onEvent: (event: PageEvent) => void;
  /** Receives the page's console lines; default: dropped. */
  onConsole?: (line: string) => void;
  /** How long launching and loading may take. Default 30 s. */
  timeoutMs?: number;
  /** Flags added to {@linkcode CHROMIUM_ARGS}, such as field trials. */
  extraArgs?: readonly string[];
  /**
   * The module the page runs; default `page_entry.ts`. It must set
   * `globalThis.p2prtcPage`.
   */
  entry?: URL;
}

const PAGE_ENTRY = new URL("./page_entry.ts", import.meta.url);

// `deno bundle --platform=browser` leaves `node:` imports in the bundle;
// the import map sends each to a browser-safe shim, served bundled at its
// path: `node:assert/strict` is used by shared test code such as the stream
// scenarios. (Shipped code imports no `node:` module: it must load in a
// browser as it is.)
const SHIMS: Record<string, { path: string; source: URL }> = {
  "node:assert/strict": {
    path: "/assert.js",
    source: new URL("./assert_shim.ts", import.meta.url),
  },
};
const INDEX_HTML = `<!doctype html>
<meta charset="utf-8">
<title>p2prtc browser test</title>
<script type="importmap">
${
  JSON.stringify({
    imports: Object.fromEntries(
      Object.entries(SHIMS).map(([specifier, { path }]) => [specifier, path]),
    ),
  })
}
</script>
<script type="module" src="/page.js"></script>
`;

/**
 * Bundles `page_entry.ts` (or `options.entry`), serves it on 127.0.0.1, launches headless
 * Chromium and loads the page, then waits until the page's API is ready.
 * Whatever was opened is closed again if a step fails.
 */
export async function openBrowserPage(
  options: OpenBrowserPageOptions,
): Promise<OpenedPage> {
  const timeout = options.timeoutMs ?? 30_000;
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      await step().catch(() => {});
    }
  };
  try {
    const dir = await Deno.makeTempDir({ prefix: "p2prtc-browser-" });
    cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const bundle = `${dir}/page.js`;
    await bundleForBrowser(options.entry ?? PAGE_ENTRY, bundle);
    const script = await Deno.readFile(bundle);
    const shims = new Map<string, Uint8Array<ArrayBuffer>>();
    for (const { path, source } of Object.values(SHIMS)) {
      await bundleForBrowser(source, `${dir}${path}`);
      shims.set(path, await Deno.readFile(`${dir}${path}`));
    }

    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/") {
          return new Response(INDEX_HTML, {
            headers: { "content-type": "text/html; charset=utf-8" },
          });
        }
        if (path === "/page.js") {
          return new Response(script, {
            headers: { "content-type": "text/javascript; charset=utf-8" },
          });
        }
        const shim = shims.get(path);
        if (shim) {
          return new Response(shim, {
            headers: { "content-type": "text/javascript; charset=utf-8" },
          });
        }
        // Chromium asks for /favicon.ico; 204 keeps its console quiet.
        return new Response(null, {
          status: path === "/favicon.ico" ? 204 : 404,
        });
      },
    );
    cleanups.push(() => server.shutdown());
    const origin = `http://127.0.0.1:${server.addr.port}`;

    // playwright gives each launch a fresh temporary profile
    // (--user-data-dir) and removes it on close.
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS, ...options.extraArgs ?? []],
      timeout,
    });
    cleanups.push(() => browser.close());
    const context = await browser.newContext();
    // Lets the page enumerate interfaces, so loopback candidates exist and
    // addresses are not hidden behind mDNS names.
    await context.grantPermissions(["microphone"], { origin });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);

    let pageError: Error | null = null;
    page.on("pageerror", (error) => pageError ??= error);
    if (options.onConsole) {
      const onConsole = options.onConsole;
      page.on("console", (message) => onConsole(message.text()));
    }
    await page.exposeBinding(
      "p2prtcEmit",
      (_source, event: PageEvent) => options.onEvent(event),
    );
    await page.goto(`${origin}/`);
    await page.waitForFunction(
      () => "p2prtcPage" in globalThis,
      undefined,
      { timeout },
    ).catch((error) => {
      throw pageError ?? error;
    });

    const close = cleanup;
    return {
      version: browser.version(),
      call(method, args) {
        return page.evaluate(
          ([method, args]) =>
            (globalThis as unknown as {
              p2prtcPage: Record<string, (...args: unknown[]) => unknown>;
            }).p2prtcPage[method](...args),
          [method, args] as const,
        );
      },
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
