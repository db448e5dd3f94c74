/**
 * The js-libp2p integration cases (`libp2p_integration_cases.ts`) over
 * libdatachannel. Registered by `native_test.ts`.
 */

import type { PeerConnectionBackend } from "../core/backend.ts";
import { libdatachannel } from "../backends/libdatachannel.ts";
import {
  libp2pDirectCases,
  libp2pWebRTCCases,
} from "./libp2p_integration_cases.ts";

const settle = (backend: PeerConnectionBackend) =>
  backend.idle!(AbortSignal.timeout(15_000));

libp2pDirectCases("libdatachannel", () => libdatachannel(), settle, {
  listen: true,
});
libp2pWebRTCCases("libdatachannel", () => libdatachannel(), settle);
