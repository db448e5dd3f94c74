/**
 * Stream pairs over a live connection: every pair a scenario asks for is a
 * fresh data channel opened by `a`, wrapped the moment it arrives at `b`.
 * Shared by the Deno harness (`backend_stream_cases.ts`) and the Chromium
 * page (`browser/scenario_entry.ts`), so it uses no Deno API.
 */

import type { DataChannel, PeerConnection } from "../core/backend.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";
import type { MakeStreamPair } from "./stream_helpers.ts";

/** A stream-pair maker over `a` (opener) and `b` (accepter). */
export function channelStreamPairs(
  a: PeerConnection,
  b: PeerConnection,
): MakeStreamPair {
  let options: StreamOptions | undefined;
  let inbound = Promise.withResolvers<
    { stream: WebRTCStream; channel: DataChannel }
  >();
  // Wrapped at once: an inbound channel may carry data already.
  b.ondatachannel = (channel) =>
    inbound.resolve({ stream: new WebRTCStream(channel, options), channel });
  return async (streamOptions) => {
    options = streamOptions;
    const ca = a.createDataChannel("");
    const stream = new WebRTCStream(ca, options);
    const peer = await inbound.promise;
    inbound = Promise.withResolvers();
    // Scenarios may send raw frames on `ca`, which needs it open; the stream
    // owns its handlers, so poll (5 s at most).
    for (let i = 0; i < 500 && ca.readyState === "connecting"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return { a: stream, b: peer.stream, ca, cb: peer.channel };
  };
}
