/**
 * Headless Chromium dials a p2prtc WebRTC-Direct listener in this process
 * (libdatachannel, on 127.0.0.1, answering `/echo/1.0.0`):
 *
 * - with p2prtc itself in the page (`browser/direct_dial_entry.ts`: the
 *   browser backend, a fresh identity), which pings the listener and echoes
 *   1 MiB;
 * - with js-libp2p in the page (`browser/libp2p_dial_entry.ts`: `libp2p`,
 *   `@libp2p/webrtc`'s `webRTCDirect()`, identify and ping), which pings
 *   it, learns its agent version in identify and echoes 1 MiB.
 *
 * The page checks the echo byte for byte and reports its timings; the test
 * checks both ends authenticated the other's peer id, and that nothing is
 * left open on either side.
 *
 * Registered by `native_test.ts` (the listener is libdatachannel). Without
 * Chromium the tests are ignored locally and fail under CI (`CI` set).
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { libdatachannel } from "../backends/libdatachannel.ts";
import type { WebRTCConnection } from "../core/connection.ts";
import type { WebRTCDirectListener } from "../core/direct_listen.ts";
import { generateIdentity } from "../core/identity.ts";
import { AGENT_VERSION, WebRTCTransport } from "../core/transport.ts";
import type { BrowserPage } from "./browser/browser_page.ts";
import {
  CHROMIUM_IGNORED,
  needChromium,
  openConsolePage,
} from "./browser/page_cases.ts";
import type { DirectDialPageApi } from "./browser/direct_dial_entry.ts";
import type { Libp2pDialPageApi } from "./browser/libp2p_dial_entry.ts";
import type { DialEchoPageApi, DialEchoResult } from "./browser/page_echo.ts";
import { waitFor } from "./conformance/connect.ts";

const ECHO = "/echo/1.0.0";
const SIZE = 1024 * 1024;
/** The page's bound for dial, ping and echo together. */
const PAGE_MS = 30_000;
/** Every other wait. */
const STEP_MS = 20_000;
/** What the last handle check says when it fails. */
const LEFT_OPEN =
  "libdatachannel handles left open (peer connections, data channels, UDP listeners)";

/** A p2prtc listener on loopback whose every connection echoes. */
interface EchoListener extends AsyncDisposable {
  transport: WebRTCTransport;
  listener: WebRTCDirectListener;
  /**
   * Closes the listener and its connections, waits for libdatachannel to
   * stop, and returns the handles still open (peer connections, data
   * channels, UDP listeners). Disposing does the same, without the count.
   */
  close(): Promise<[number, number, number]>;
}

async function echoListener(): Promise<EchoListener> {
  const backend = await libdatachannel();
  const transport = new WebRTCTransport({
    backend,
    identity: await generateIdentity(),
  });
  transport.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));
  const listener = await transport.listen("/ip4/127.0.0.1/udp/0/webrtc-direct");
  const close = async (): Promise<[number, number, number]> => {
    await listener[Symbol.asyncDispose]();
    await transport[Symbol.asyncDispose]();
    await backend.idle(AbortSignal.timeout(STEP_MS));
    const left = backend.openHandles();
    return [left.peerConnections, left.dataChannels, left.udpListeners ?? 0];
  };
  // A failed test still closes everything, and its own error is reported.
  return {
    transport,
    listener,
    close,
    [Symbol.asyncDispose]: async () => void await close(),
  };
}

/** Waits at most {@linkcode STEP_MS} for `promise`. */
function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  return waitFor<T>(what, AbortSignal.timeout(STEP_MS), (done, fail) => {
    promise.then(done, fail);
  });
}

/**
 * Has the page dial the listener, ping it and echo 1 MiB while the
 * listener accepts; checks that each end authenticated the other, prints
 * the page's figures and returns the accepted connection and the report.
 */
async function dialFromPage(
  server: EchoListener,
  page: BrowserPage<DialEchoPageApi>,
  failed: (what: string, cause: unknown) => Error,
  what: string,
): Promise<{ inbound: WebRTCConnection; result: DialEchoResult }> {
  const { listener, transport } = server;
  const pagePeer = await page.call("peerId");
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const accepted = listener.accept();
  // Awaited below; the page failing first must not leave it unhandled.
  accepted.catch(() => {});
  let result: DialEchoResult;
  try {
    result = await page.call("dialEcho", listener.addr, SIZE, seed, PAGE_MS);
  } catch (error) {
    throw failed(`the page failed (seed ${seed})`, error);
  }
  const inbound = await settled(accepted, "the listener to accept");
  strictEqual(result.remotePeer, transport.identity.peerId.toString());
  strictEqual(inbound.remotePeer.toString(), pagePeer);
  strictEqual(inbound.direction, "inbound");
  strictEqual(result.bytes, SIZE);
  console.log(
    `  ${what} in Chromium ${page.version}: dial ${result.dialMs.toFixed(0)} ` +
      `ms, ping ${result.pingMs.toFixed(1)} ms, 1 MiB echoed in ` +
      `${result.echoMs.toFixed(0)} ms (${
        (SIZE / 1e6 / (result.echoMs / 1000)).toFixed(1)
      } MB/s each way)`,
  );
  return { inbound, result };
}

Deno.test({
  name:
    "browser direct: p2prtc in headless Chromium dials a p2prtc listener and echoes 1 MiB",
  ignore: CHROMIUM_IGNORED,
  async fn() {
    needChromium();
    await using server = await echoListener();
    const { page, failed } = await openConsolePage<DirectDialPageApi>(
      new URL("./browser/direct_dial_entry.ts", import.meta.url),
      PAGE_MS + STEP_MS,
    );
    await using _page = page;
    ok(
      await page.call("directDial"),
      "Chromium refused munged ICE credentials",
    );
    const { inbound } = await dialFromPage(server, page, failed, "p2prtc");

    // The page closing its side is seen here, and nothing is left there.
    deepStrictEqual(await page.call("close", STEP_MS), {
      peerConnections: 0,
      dataChannels: 0,
    });
    await settled(inbound.closed, "the listener to see the close");
    strictEqual(server.transport.connections.size, 0);
    deepStrictEqual(await server.close(), [0, 0, 0], LEFT_OPEN);
  },
});

Deno.test({
  name:
    "browser direct: js-libp2p in headless Chromium dials a p2prtc listener, pings it and echoes 1 MiB",
  ignore: CHROMIUM_IGNORED,
  async fn() {
    needChromium();
    await using server = await echoListener();
    const { page, failed } = await openConsolePage<Libp2pDialPageApi>(
      new URL("./browser/libp2p_dial_entry.ts", import.meta.url),
      PAGE_MS + STEP_MS,
    );
    await using _page = page;
    const { inbound, result } = await dialFromPage(
      server,
      page,
      failed,
      "js-libp2p",
    );
    // js-libp2p ran identify against the listener.
    strictEqual(result.agentVersion, AGENT_VERSION);

    deepStrictEqual(await page.call("stop", STEP_MS), {
      peerConnections: 0,
      connections: 0,
    });
    await settled(inbound.closed, "the listener to see the close");
    strictEqual(server.transport.connections.size, 0);
    deepStrictEqual(await server.close(), [0, 0, 0], LEFT_OPEN);
  },
});
