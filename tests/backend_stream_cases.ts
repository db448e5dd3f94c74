/**
 * The stream scenarios of `stream_scenarios.ts` over real backends: each
 * scenario gets a live loopback connection, and every stream pair it asks
 * for is a fresh data channel on it, wrapped the moment it arrives.
 */

import { deepStrictEqual } from "node:assert/strict";
import type { DataChannel, PeerConnectionBackend } from "../core/backend.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";
import { Closer, connect } from "./conformance/connect.ts";
import { streamScenarios } from "./stream_scenarios.ts";

/** Backends that can say when everything they made has stopped. */
type Settling = PeerConnectionBackend & {
  idle(signal?: AbortSignal): Promise<void>;
};

/** Registers every stream scenario over `label`'s backends. */
export function streamScenariosOver(
  label: string,
  makeBackends: () => Promise<{ a: Settling; b: Settling }>,
): void {
  for (const scenario of streamScenarios) {
    Deno.test(`stream (${label}): ${scenario.name}`, async () => {
      const { a: backendA, b: backendB } = await makeBackends();
      const closer = new Closer();
      try {
        const { a, b } = await connect(backendA, backendB, closer, {
          signal: AbortSignal.timeout(20_000),
        });
        let options: StreamOptions | undefined;
        let inbound = Promise.withResolvers<
          { stream: WebRTCStream; channel: DataChannel }
        >();
        // Wrapped at once: an inbound channel may carry data already.
        b.ondatachannel = (channel) =>
          inbound.resolve({
            stream: new WebRTCStream(channel, options),
            channel,
          });
        await scenario.run(async (streamOptions) => {
          options = streamOptions;
          const ca = a.createDataChannel("");
          const stream = new WebRTCStream(ca, options);
          // The peer sees the channel once something is sent or it opens.
          const peer = await inbound.promise;
          inbound = Promise.withResolvers();
          // Scenarios may send raw frames on `ca`, which needs it open; the
          // stream owns its handlers, so poll (5 s at most).
          for (let i = 0; i < 500 && ca.readyState === "connecting"; i++) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          return { a: stream, b: peer.stream, ca, cb: peer.channel };
        });
      } finally {
        closer.closeAll();
        const signal = AbortSignal.timeout(10_000);
        await backendA.idle(signal);
        await backendB.idle(signal);
        const none = { peerConnections: 0, dataChannels: 0 };
        deepStrictEqual(backendA.openHandles(), none);
        deepStrictEqual(backendB.openHandles(), none);
      }
    });
  }
}
