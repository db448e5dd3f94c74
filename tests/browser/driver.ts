/**
 * The browser driver process: opens the test page (`chromium.ts`) and
 * relays between it and the test process over stdin and stdout, one JSON
 * value per line.
 *
 * It is a separate process because playwright-core cannot load under the
 * project's `test` permission set: at import it reads
 * `/proc/sys/fs/binfmt_misc/WSLInterop`, which Deno 2.9 allows only with
 * `--allow-all`, and it needs `--allow-sys` beyond `networkInterfaces`. So
 * the driver runs with `-A` and the code under test keeps the permissions it
 * ships with; the test process also sees one child process instead of
 * playwright's own pipes and timers.
 *
 * In: `{ id, method, args }`, a call of the page's `p2prtcPage`. Out:
 * `{ ready: { version } }` once the page is loaded, `{ id, result }` or
 * `{ id, error }` per call, `{ event }` per page event, `{ console }` per
 * page console line, `{ failed }` if the page could not be opened. It closes
 * everything and exits when its stdin ends. Its arguments are extra Chromium
 * flags; `P2PRTC_PAGE_ENTRY`, if set, is the URL of the module the page runs
 * instead of `page_entry.ts`.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import { openBrowserPage } from "./chromium.ts";
import { jsonLines } from "./json_lines.ts";

const ENTRY = Deno.env.get("P2PRTC_PAGE_ENTRY");
const encoder = new TextEncoder();
const stdout = Deno.stdout.writable.getWriter();
// If the test process is gone there is no one left to tell.
const send = (message: unknown) =>
  stdout.write(encoder.encode(JSON.stringify(message) + "\n")).catch(() => {});

function describe(error: unknown): string {
  return error instanceof Error ? error.stack ?? error.message : String(error);
}

try {
  const page = await openBrowserPage({
    onEvent: (event) => send({ event }),
    onConsole: (line) => send({ console: line }),
    extraArgs: Deno.args,
    entry: ENTRY === undefined ? undefined : new URL(ENTRY),
  });
  await send({ ready: { version: page.version } });
  const pending = new Set<Promise<unknown>>();
  for await (const line of jsonLines(Deno.stdin.readable)) {
    const { id, method, args } = line as {
      id: number;
      method: string;
      args: unknown[];
    };
    const call = page.call(method, args).then(
      (result) => send({ id, result }),
      (error) => send({ id, error: describe(error) }),
    );
    pending.add(call);
    call.finally(() => pending.delete(call));
  }
  await Promise.allSettled(pending);
  await page.close();
} catch (error) {
  await send({ failed: describe(error) });
}
await stdout.close();
// playwright may keep a socket or timer open after the browser is gone.
Deno.exit(0);
