/**
 * A second browser test page: the stream scenarios of `stream_scenarios.ts`
 * over the browser backend, with both peer connections in the page,
 * connected on loopback (`conformance/connect.ts`). The Deno test process
 * runs one scenario per call of `p2prtcPage.run` and learns whether it
 * passed.
 *
 * `node:assert/strict`, which the scenarios import, is mapped to
 * `assert_shim.ts` by the page's import map (`chromium.ts`).
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createBrowserBackend } from "../../backends/browser.ts";
import type { HandleCount } from "../../core/backend.ts";
import { channelStreamPairs } from "../channel_stream_pairs.ts";
import { Closer, connect } from "../conformance/connect.ts";
import { streamScenarios } from "../stream_scenarios.ts";

/** How one scenario ended in the page. */
export type ScenarioResult =
  | { ok: true; ms: number }
  | { ok: false; ms: number; error: string };

/** What the test process can ask of the scenario page. */
export interface ScenarioPageApi {
  /** The scenarios' names, in order. */
  names(): string[];
  /**
   * Runs the scenario called `name` on a fresh pair of connected peer
   * connections, at most `timeoutMs`, then closes them and waits (at most
   * `timeoutMs` more) until the backend has no handle open.
   */
  run(name: string, timeoutMs: number): Promise<ScenarioResult>;
  /** The backend's open handles. */
  handles(): HandleCount;
}

const backend = await createBrowserBackend();

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const stack = error.stack ?? "";
  // Chromium's stack starts with the message; other engines' may not.
  return stack.includes(error.message)
    ? stack
    : `${error.name}: ${error.message}\n${stack}`;
}

/** Rejects after `ms`; `clear` stops the timer. */
function deadline(ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return { expired, clear: () => clearTimeout(timer) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runScenario(name: string, timeoutMs: number): Promise<void> {
  const scenario = streamScenarios.find((s) => s.name === name);
  if (scenario === undefined) throw new Error(`no scenario ${name}`);
  const closer = new Closer();
  const limit = deadline(timeoutMs, `scenario ${name} in ${timeoutMs} ms`);
  const body = (async () => {
    const { a, b } = await connect(backend, backend, closer, {
      signal: AbortSignal.timeout(Math.min(timeoutMs, 20_000)),
    });
    await scenario.run(channelStreamPairs(a, b));
  })();
  // If the deadline wins, the body ends in a rejection once the connections
  // are closed below; nobody waits for it any more.
  body.catch(() => {});
  let failure: { error: unknown } | null = null;
  try {
    await Promise.race([body, limit.expired]);
  } catch (error) {
    failure = { error };
  }
  limit.clear();
  closer.closeAll();
  // Every handle goes, whether the scenario passed or not.
  const until = performance.now() + timeoutMs;
  let open = backend.openHandles();
  while (
    (open.peerConnections > 0 || open.dataChannels > 0) &&
    performance.now() < until
  ) {
    await sleep(20);
    open = backend.openHandles();
  }
  // The scenario's own failure says more than what it left behind.
  if (failure !== null) throw failure.error;
  if (open.peerConnections > 0 || open.dataChannels > 0) {
    throw new Error(`handles left open after ${name}: ${JSON.stringify(open)}`);
  }
}

const api: ScenarioPageApi = {
  names: () => streamScenarios.map((s) => s.name),
  async run(name, timeoutMs) {
    const started = performance.now();
    try {
      await runScenario(name, timeoutMs);
      return { ok: true, ms: Math.round(performance.now() - started) };
    } catch (error) {
      return {
        ok: false,
        ms: Math.round(performance.now() - started),
        error: describe(error),
      };
    }
  },
  handles: () => backend.openHandles(),
};

(globalThis as { p2prtcPage?: ScenarioPageApi }).p2prtcPage = api;
