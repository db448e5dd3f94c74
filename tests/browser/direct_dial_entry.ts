/**
 * A browser test page that dials WebRTC-Direct with p2prtc itself: a
 * {@linkcode WebRTCTransport} over the browser backend and a fresh identity
 * dials a listener in the Deno test process, pings it, and echoes bytes on
 * `/echo/1.0.0`, checking them byte for byte in the page.
 *
 * The bytes come from a seed (`tests/random.ts`), so a failure can be
 * replayed; none of them cross the test harness.
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createBrowserBackend } from "../../backends/browser.ts";
import type { HandleCount } from "../../core/backend.ts";
import { generateIdentity } from "../../core/identity.ts";
import { ping, PING_PROTOCOL } from "../../core/ping.ts";
import { WebRTCTransport } from "../../core/transport.ts";
import { random, randomBytes } from "../random.ts";
import {
  type DialEchoPageApi,
  type DialEchoResult,
  echoChecked,
  settleHandles,
} from "./page_echo.ts";

/** What the test process can ask of this page. */
export interface DirectDialPageApi extends DialEchoPageApi {
  /** Whether the browser lets the backend dial WebRTC-Direct. */
  directDial(): boolean;
  /**
   * Closes every connection and waits (at most `timeoutMs`) until the
   * backend has no handle open; returns what is left.
   */
  close(timeoutMs: number): Promise<HandleCount>;
  /** The backend's open handles. */
  handles(): HandleCount;
}

const ECHO = "/echo/1.0.0";

const backend = await createBrowserBackend();
const transport = new WebRTCTransport({
  backend,
  identity: await generateIdentity(),
  // The page gathers on every interface; only loopback is offered.
  bindAddress: "127.0.0.1",
});

async function dialEcho(
  addr: string,
  size: number,
  seed: number,
  timeoutMs: number,
): Promise<DialEchoResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  const dialStarted = performance.now();
  const conn = await transport.dial(addr, { signal, timeout: timeoutMs });
  const dialMs = performance.now() - dialStarted;
  const pingStream = await conn.newStream(PING_PROTOCOL, { signal });
  const pingMs = await ping(pingStream, { signal });
  await pingStream.writable.close();
  const stream = await conn.newStream(ECHO, { signal });
  const data = randomBytes(random(seed), size);
  const echoMs = await echoChecked(
    data,
    async (bytes) => {
      const writer = stream.writable.getWriter();
      await writer.write(bytes);
      await writer.close();
    },
    stream.readable,
    signal,
  );
  return {
    remotePeer: conn.remotePeer.toString(),
    dialMs,
    pingMs,
    echoMs,
    bytes: size,
  };
}

const api: DirectDialPageApi = {
  directDial: () => backend.capabilities.directDial,
  peerId: () => transport.identity.peerId.toString(),
  dialEcho,
  async close(timeoutMs) {
    await transport[Symbol.asyncDispose]();
    return await settleHandles(() => backend.openHandles(), timeoutMs);
  },
  handles: () => backend.openHandles(),
};

(globalThis as { p2prtcPage?: DirectDialPageApi }).p2prtcPage = api;
