/**
 * A browser test page that meets a Deno peer on the WebSocket rendezvous
 * (`signaling/websocket.ts`) and connects over `/webrtc`: a
 * {@linkcode WebRTCTransport} over the browser backend, a
 * {@linkcode RendezvousClient} over the browser's own `WebSocket`. The page
 * dials the Deno peer and echoes 1 MiB on `/echo/1.0.0`, checking it byte
 * for byte, and answers the attempts the Deno peer opens to it, serving
 * `/echo/1.0.0` itself.
 *
 * It is bundled for the browser at test time (`bundle.ts`); it is not
 * shipped.
 *
 * @module
 */

import { createBrowserBackend } from "../../backends/browser.ts";
import type { HandleCount } from "../../core/backend.ts";
import type { WebRTCConnection } from "../../core/connection.ts";
import { generateIdentity } from "../../core/identity.ts";
import { WebRTCTransport } from "../../core/transport.ts";
import { RendezvousClient } from "../../signaling/websocket.ts";
import { isLoopback } from "../conformance/connect.ts";
import { random, randomBytes } from "../random.ts";
import { writeAndClose } from "../stream_helpers.ts";
import { echoChecked, settleHandles } from "./page_echo.ts";

/** What the page reports after it dialled and echoed. */
export interface RendezvousDialResult {
  /** The peer the connection reports. */
  remotePeer: string;
  /** From the dial to a connection, in ms. */
  connectMs: number;
  /** From the first byte written to the last byte of the echo, in ms. */
  echoMs: number;
  /** Bytes echoed (each way). */
  bytes: number;
}

/** What the test process can ask of this page. */
export interface RendezvousPageApi {
  /** The page's peer id. */
  peerId(): string;
  /**
   * Connects to the rendezvous at `url` and answers every attempt made to
   * the page from then on.
   */
  join(url: string, timeoutMs: number): Promise<void>;
  /**
   * Dials `remotePeer` through the rendezvous, then echoes `size` bytes of
   * the stream of `seed` on `/echo/1.0.0` and checks them. Bounded by
   * `timeoutMs`; the connection stays open.
   */
  dialEcho(
    remotePeer: string,
    size: number,
    seed: number,
    timeoutMs: number,
  ): Promise<RendezvousDialResult>;
  /**
   * Waits for the next connection the page answered; resolves with the
   * peer it reports.
   */
  answered(timeoutMs: number): Promise<string>;
  /**
   * Leaves the rendezvous, closes every connection and waits (at most
   * `timeoutMs`) until the backend has no handle open; returns what is
   * left.
   */
  close(timeoutMs: number): Promise<HandleCount>;
}

const ECHO = "/echo/1.0.0";

const backend = await createBrowserBackend();
const identity = await generateIdentity();
const transport = new WebRTCTransport({
  backend,
  identity,
  // The page gathers on every interface; only loopback is offered.
  bindAddress: "127.0.0.1",
});
transport.handle(ECHO, (stream) => stream.readable.pipeTo(stream.writable));

let rendezvous: RendezvousClient | undefined;
/** Connections the page answered, or why answering failed. */
const answers: Promise<WebRTCConnection>[] = [];
let nextAnswer = Promise.withResolvers<void>();

async function join(url: string, timeoutMs: number): Promise<void> {
  const client = await RendezvousClient.connect(url, {
    identity,
    timeout: timeoutMs,
  });
  rendezvous = client;
  (async () => {
    for await (const { remotePeer, channel } of client) {
      const answer = transport.connect(channel, {
        remotePeer,
        role: "answerer",
        candidateFilter: isLoopback,
        timeout: timeoutMs,
      });
      answer.catch(() => {});
      answers.push(answer);
      nextAnswer.resolve();
      nextAnswer = Promise.withResolvers();
    }
  })();
}

async function dialEcho(
  remotePeer: string,
  size: number,
  seed: number,
  timeoutMs: number,
): Promise<RendezvousDialResult> {
  if (!rendezvous) throw new Error("join the rendezvous first");
  const signal = AbortSignal.timeout(timeoutMs);
  const started = performance.now();
  const conn = await transport.connect(rendezvous.dial(remotePeer), {
    remotePeer,
    role: "offerer",
    candidateFilter: isLoopback,
    timeout: timeoutMs,
    signal,
  });
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

async function answered(timeoutMs: number): Promise<string> {
  const signal = AbortSignal.timeout(timeoutMs);
  while (answers.length === 0) {
    signal.throwIfAborted();
    await Promise.race([
      nextAnswer.promise,
      new Promise((resolve) => setTimeout(resolve, 100)),
    ]);
  }
  const conn = await answers.shift()!;
  return conn.remotePeer.toString();
}

const api: RendezvousPageApi = {
  peerId: () => identity.peerId.toString(),
  join,
  dialEcho,
  answered,
  async close(timeoutMs) {
    await rendezvous?.close();
    await transport[Symbol.asyncDispose]();
    return await settleHandles(() => backend.openHandles(), timeoutMs);
  },
};

(globalThis as { p2prtcPage?: RendezvousPageApi }).p2prtcPage = api;
