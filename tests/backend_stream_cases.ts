/**
 * The stream scenarios of `stream_scenarios.ts` over real backends: each
 * scenario gets a live loopback connection, and every stream pair it asks
 * for is a fresh data channel on it, wrapped the moment it arrives.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
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

/**
 * Checklist item 22 over `label`'s backends: 1000 streams opened, used and
 * closed on one connection, 50 at a time, leave no channel behind, and the
 * opener's channel ids all have one parity (the DTLS role decides which).
 */
export function manyStreamsOver(
  label: string,
  makeBackends: () => Promise<{ a: Settling; b: Settling }>,
): void {
  Deno.test(`stream (${label}): 22 1000 streams open and close without leaking channels`, async () => {
    const { a: backendA, b: backendB } = await makeBackends();
    const closer = new Closer();
    try {
      const { a, b } = await connect(backendA, backendB, closer, {
        signal: AbortSignal.timeout(20_000),
      });
      b.ondatachannel = (channel) => {
        const stream = new WebRTCStream(channel);
        // Echo one message back, then close: a full FIN / FIN_ACK each way.
        stream.readable.pipeTo(stream.writable).catch(() => stream.reset());
      };
      const parities = new Set<number>();
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(Array.from({ length: 50 }, async () => {
          const stream = new WebRTCStream(a.createDataChannel(""));
          const writer = stream.writable.getWriter();
          await writer.write(new Uint8Array([batch]));
          await writer.close();
          const reader = stream.readable.getReader();
          const { value } = await reader.read();
          deepStrictEqual(value, new Uint8Array([batch]));
          strictEqual((await reader.read()).done, true);
          await stream.closed;
          parities.add(stream.id! % 2);
        }));
      }
      strictEqual(parities.size, 1, "one parity for the opener's ids");
      // Only channel 0 is left on each side once the closes have landed.
      for (let i = 0; i < 200; i++) {
        const open = backendA.openHandles().dataChannels +
          backendB.openHandles().dataChannels;
        if (open === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      strictEqual(
        backendA.openHandles().dataChannels,
        backendA === backendB ? 2 : 1,
      );
    } finally {
      closer.closeAll();
      const signal = AbortSignal.timeout(10_000);
      await backendA.idle(signal);
      await backendB.idle(signal);
    }
  });
}
