/**
 * A browser test page that connects over `/webrtc` with the spec's
 * signalling protocol: a {@linkcode WebRTCTransport} over the browser
 * backend, whose `/webrtc-signaling/0.0.1` byte stream is a WebSocket to the
 * Deno test process (`ws_byte_stream.ts`), with `relaySignaling` at both
 * ends. The page either offers and then echoes 1 MiB on `/echo/1.0.0`,
 * checking it byte for byte, or answers and serves `/echo/1.0.0` itself.
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createBrowserBackend } from "../../backends/browser.ts";
import type { HandleCount } from "../../core/backend.ts";
import { generateIdentity } from "../../core/identity.ts";
import { WebRTCTransport } from "../../core/transport.ts";
import { relaySignaling } from "../../signaling/relay.ts";
import { isLoopback } from "../conformance/connect.ts";
import { random, randomBytes } from "../random.ts";
import { writeAndClose } from "../stream_helpers.ts";
import { echoChecked, settleHandles } from "./page_echo.ts";
import { webSocketByteStream } from "./ws_byte_stream.ts";

/** What the page reports after it offered and echoed. */
export interface RelayDialResult {
  /** The peer the connection reports. */
  remotePeer: string;
  /** From opening the WebSocket to a connection, in ms. */
  connectMs: number;
  /** From the first byte written to the last byte of the echo, in ms. */
  echoMs: number;
  /** Bytes echoed (each way). */
  bytes: number;
}

/** What the test process can ask of this page. */
export interface RelayPageApi {
  /** The page's peer id. */
  peerId(): string;
  /**
   * Opens a WebSocket to `url`, offers over it to `remotePeer`, then echoes
   * `size` bytes of the stream of `seed` on `/echo/1.0.0` and checks them.
   * Bounded by `timeoutMs`; the connection stays open.
   */
  dialEcho(
    url: string,
    remotePeer: string,
    size: number,
    seed: number,
    timeoutMs: number,
  ): Promise<RelayDialResult>;
  /**
   * Opens a WebSocket to `url` and answers `remotePeer`'s offer over it;
   * resolves with the peer the connection reports once it is up.
   */
  answer(url: string, remotePeer: string, timeoutMs: number): Promise<string>;
  /**
   * Closes every connection and waits (at most `timeoutMs`) until the
   * backend has no handle open; returns what is left.
   */
  close(timeoutMs: number): Promise<HandleCount>;
}

const ECHO = "/echo/1.0.0";

const backend = await createBrowserBackend();
const transport = new WebRTCTransport({
  backend,
  identity: await generateIdentity(),
  // The page gathers on every interface; only loopback is offered.
  bindAddress: "127.0.0.1",
});
transport.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));

function connectOver(
  url: string,
  remotePeer: string,
  role: "offerer" | "answerer",
  timeoutMs: number,
) {
  const signaling = relaySignaling(webSocketByteStream(new WebSocket(url)));
  return transport.connect(signaling, {
    remotePeer,
    role,
    candidateFilter: isLoopback,
    timeout: timeoutMs,
  });
}

async function dialEcho(
  url: string,
  remotePeer: string,
  size: number,
  seed: number,
  timeoutMs: number,
): Promise<RelayDialResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  const started = performance.now();
  const conn = await connectOver(url, remotePeer, "offerer", timeoutMs);
  const connectMs = performance.now() - started;
  const stream = await conn.newStream(ECHO, { signal });
  const data = randomBytes(random(seed), size);
  const echoMs = await echoChecked(
    data,
    (bytes) => writeAndClose(stream, bytes),
    stream.readable,
    signal,
  );
  return {
    remotePeer: conn.remotePeer.toString(),
    connectMs,
    echoMs,
    bytes: size,
  };
}

const api: RelayPageApi = {
  peerId: () => transport.identity.peerId.toString(),
  dialEcho,
  async answer(url, remotePeer, timeoutMs) {
    const conn = await connectOver(url, remotePeer, "answerer", timeoutMs);
    return conn.remotePeer.toString();
  },
  async close(timeoutMs) {
    await transport[Symbol.asyncDispose]();
    return await settleHandles(() => backend.openHandles(), timeoutMs);
  },
};

(globalThis as { p2prtcPage?: RelayPageApi }).p2prtcPage = api;
