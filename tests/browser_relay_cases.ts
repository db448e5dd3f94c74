/**
 * Headless Chromium (the browser backend, `browser/relay_entry.ts`) and a
 * p2prtc transport in this process connect over `/webrtc` with the spec's
 * signalling protocol: the `/webrtc-signaling/0.0.1` byte stream runs over a
 * WebSocket (binary frames, `browser/ws_byte_stream.ts`) to a `Deno.serve`
 * on 127.0.0.1, with `relaySignaling` at both ends. Both ways round:
 *
 * - the page offers, then echoes 1 MiB through the Deno side's
 *   `/echo/1.0.0` and checks it byte for byte;
 * - the Deno side offers, then echoes 1 MiB through the page's
 *   `/echo/1.0.0` and checks it here.
 *
 * Each end checks it reports the other's peer id, and nothing is left open
 * on either side. Run against each Deno backend; registered by
 * `native_test.ts` (libdatachannel is one). Without Chromium the tests are
 * ignored locally and fail under CI (`CI` set).
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { WebRTCConnection } from "../core/connection.ts";
import { generateIdentity } from "../core/identity.ts";
import { WebRTCTransport } from "../core/transport.ts";
import { relaySignaling } from "../signaling/relay.ts";
import {
  CHROMIUM_IGNORED,
  needChromium,
  openConsolePage,
} from "./browser/page_cases.ts";
import { DENO_PEERS } from "./browser/deno_peer.ts";
import type { RelayPageApi } from "./browser/relay_entry.ts";
import {
  type WebSocketByteStream,
  webSocketByteStream,
} from "./browser/ws_byte_stream.ts";
import { isLoopback, waitFor } from "./conformance/connect.ts";
import { random, randomBytes } from "./random.ts";
import { assertBytes, readAll, writeAndClose } from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";
const SIZE = 1024 * 1024;
/** The bound on the page's connect and echo together. */
const PAGE_MS = 30_000;
/** Every other wait. */
const STEP_MS = 20_000;

/** `promise`, or a TimeoutError once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return waitFor(what, AbortSignal.timeout(ms), (done, fail) => {
    promise.then(done, fail);
  });
}

/**
 * A WebSocket endpoint on 127.0.0.1 that takes one signalling socket at a
 * time and hands it to `onSocket`; later sockets are refused while one is
 * open.
 */
function signalingServer(
  onSocket: (stream: WebSocketByteStream) => void,
) {
  let open: WebSocketByteStream | undefined;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      if (request.headers.get("upgrade") !== "websocket") {
        return new Response(null, { status: 426 });
      }
      if (open) return new Response(null, { status: 409 });
      const { socket, response } = Deno.upgradeWebSocket(request);
      const stream = webSocketByteStream(socket);
      open = stream;
      stream.closed.then(() => {
        if (open === stream) open = undefined;
      });
      onSocket(stream);
      return response;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/webrtc-signaling`,
    async [Symbol.asyncDispose]() {
      await open?.closed;
      await server.shutdown();
    },
  };
}

for (const [denoName, denoPeer] of Object.entries(DENO_PEERS)) {
  Deno.test({
    name:
      `browser relay: Chromium and ${denoName} connect over /webrtc with /webrtc-signaling/0.0.1 over a WebSocket, both ways, 1 MiB echoed`,
    ignore: CHROMIUM_IGNORED,
    async fn(t) {
      needChromium();
      const deno = await denoPeer();
      try {
        const transport = new WebRTCTransport({
          backend: deno.backend,
          identity: await generateIdentity(),
          bindAddress: "127.0.0.1",
        });
        await using _transport = transport;
        transport.handle(ECHO, (s) => s.readable.pipeTo(s.writable));
        const self = transport.identity.peerId.toString();
        const { page, failed } = await openConsolePage<RelayPageApi>(
          new URL("./browser/relay_entry.ts", import.meta.url),
          PAGE_MS + STEP_MS,
        );
        await using _page = page;
        const pagePeer = await page.call("peerId");
        // The Deno side's role for the socket the page opens next.
        let role: "offerer" | "answerer" = "answerer";
        let accepted = Promise.withResolvers<WebRTCConnection>();
        let socket: WebSocketByteStream | undefined;
        await using server = signalingServer((stream) => {
          socket = stream;
          transport.connect(relaySignaling(stream), {
            remotePeer: pagePeer,
            role,
            candidateFilter: isLoopback,
            timeout: STEP_MS,
          }).then(accepted.resolve, accepted.reject);
        });
        // Both ends closed their halves once connected: the socket closed
        // with 1000, not a reset.
        const closedCleanly = async () =>
          strictEqual(
            await within(socket!.closed, STEP_MS, "the socket to close"),
            1000,
          );
        // Later steps build on earlier ones, so the first failure ends it.
        const step = async (name: string, fn: () => Promise<void>) => {
          if (!await t.step(name, fn)) throw new Error(`step failed: ${name}`);
        };

        await step(
          "Chromium offers, Deno answers; the page echoes 1 MiB",
          async () => {
            const seed = crypto.getRandomValues(new Uint32Array(1))[0];
            accepted.promise.catch(() => {});
            const result = await page.call(
              "dialEcho",
              server.url,
              self,
              SIZE,
              seed,
              PAGE_MS,
            ).catch((error) => {
              throw failed(`the page failed (seed ${seed})`, error);
            });
            const inbound = await within(accepted.promise, STEP_MS, "answer");
            strictEqual(result.remotePeer, self);
            strictEqual(result.bytes, SIZE);
            strictEqual(inbound.remotePeer.toString(), pagePeer);
            strictEqual(inbound.direction, "inbound");
            console.log(
              `  Chromium → ${denoName}: connected in ${
                result.connectMs.toFixed(0)
              } ms, 1 MiB echoed in ${result.echoMs.toFixed(0)} ms`,
            );
            await closedCleanly();
          },
        );

        await step(
          "Deno offers, Chromium answers; Deno echoes 1 MiB",
          async () => {
            role = "offerer";
            accepted = Promise.withResolvers();
            accepted.promise.catch(() => {});
            const answered = page.call("answer", server.url, self, PAGE_MS)
              .catch((error) => {
                throw failed("the page failed to answer", error);
              });
            const outbound = await within(accepted.promise, STEP_MS, "offer")
              .catch((error) => {
                throw failed("the Deno side failed to offer", error);
              });
            strictEqual(await answered, self);
            strictEqual(outbound.remotePeer.toString(), pagePeer);
            strictEqual(outbound.direction, "outbound");
            const stream = await outbound.newStream(ECHO);
            const data = randomBytes(random(0x7e1a), SIZE);
            const [, echoed] = await Promise.all([
              writeAndClose(stream, data),
              readAll(stream.readable),
            ]);
            assertBytes(echoed, data);
            await closedCleanly();
          },
        );

        await step("both sides close and leave nothing open", async () => {
          deepStrictEqual(await page.call("close", STEP_MS), {
            peerConnections: 0,
            dataChannels: 0,
          });
          await within(
            Promise.all([...transport.connections].map((c) => c.closed)),
            STEP_MS,
            "the Deno side to see the page close",
          );
          strictEqual(transport.connections.size, 0);
        });
      } finally {
        await deno.settle(AbortSignal.timeout(STEP_MS));
      }
      const left = deno.backend.openHandles();
      ok(
        left.peerConnections === 0 && left.dataChannels === 0,
        `${denoName} handles left open: ${JSON.stringify(left)}`,
      );
    },
  });
}
