/**
 * `/webrtc` through the WebSocket rendezvous over libdatachannel
 * (`rendezvous_cases.ts`). Registered by `native_test.ts`, the one test
 * file that loads node-datachannel.
 *
 * @module
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { rendezvousCases } from "./rendezvous_cases.ts";

rendezvousCases(
  "libdatachannel",
  async () => {
    const backend = await libdatachannel();
    return { a: backend, b: backend };
  },
  async (backends: PeerConnectionBackend[]) => {
    for (const backend of new Set(backends)) {
      await (backend as Awaited<ReturnType<typeof libdatachannel>>).idle(
        AbortSignal.timeout(10_000),
      );
    }
  },
);
