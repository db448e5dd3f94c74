/**
 * The stream scenarios of `stream_scenarios.ts` over real backends: each
 * scenario gets a live loopback connection, and every stream pair it asks
 * for is a fresh data channel on it, wrapped the moment it arrives.
 */

import { deepStrictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { channelStreamPairs } from "./channel_stream_pairs.ts";
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
        await scenario.run(channelStreamPairs(a, b));
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
