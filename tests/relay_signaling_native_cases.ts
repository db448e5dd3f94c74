/**
 * `/webrtc` over the spec's signalling protocol on libdatachannel (the cases
 * of `relay_signaling_cases.ts`). Registered by `native_test.ts`.
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import { relaySignalingCases } from "./relay_signaling_cases.ts";

relaySignalingCases(
  "libdatachannel",
  () => libdatachannel(),
  (backend) =>
    (backend as Awaited<ReturnType<typeof libdatachannel>>).idle(
      AbortSignal.timeout(10_000),
    ),
);
