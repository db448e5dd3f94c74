/**
 * The protocol-level cases over the libdatachannel backend: `/webrtc`
 * negotiation, and interop with js-libp2p over WebRTC-Direct.
 * Registered by `native_test.ts`.
 */

import type { PeerConnectionBackend } from "../core/backend.ts";
import { libdatachannel } from "../backends/libdatachannel.ts";
import {
  interopCases,
  interopFailureCases,
  interopListenCases,
} from "./interop_cases.ts";
import { negotiationCases } from "./negotiation_cases.ts";
import { directListenCases } from "./direct_listen_cases.ts";
import { streamScenariosOver } from "./backend_stream_cases.ts";

const settle = async (backends: PeerConnectionBackend[]) => {
  for (const backend of backends) {
    await (backend as Awaited<ReturnType<typeof libdatachannel>>).idle(
      AbortSignal.timeout(10_000),
    );
  }
};

negotiationCases(
  "libdatachannel",
  async () => {
    const backend = await libdatachannel();
    return { a: backend, b: backend };
  },
  settle,
);
interopCases("libdatachannel", () => libdatachannel(), (b) => settle([b]));
interopFailureCases(
  "libdatachannel",
  () => libdatachannel(),
  (b) => settle([b]),
);
interopListenCases(
  "libdatachannel",
  () => libdatachannel(),
  (b) => settle([b]),
);

streamScenariosOver("libdatachannel", async () => {
  const backend = await libdatachannel();
  return { a: backend, b: backend };
});

directListenCases(
  "libdatachannel",
  () => libdatachannel(),
  (backend) => settle([backend]),
);
