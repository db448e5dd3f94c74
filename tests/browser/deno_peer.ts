/**
 * The Deno side of the browser test: the backends it runs against, and how
 * to wait until one has really stopped (so the sanitizers see nothing).
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import type { PeerConnectionBackend } from "../../core/backend.ts";
import { libdatachannel } from "../../backends/libdatachannel.ts";
import { werift } from "../../backends/werift.ts";

/** A backend for the Deno peer, and how to wait for it to stop. */
export interface DenoPeer {
  /** The backend under test on the Deno side. */
  backend: PeerConnectionBackend;
  /** Resolves when every handle is closed and the stack has stopped. */
  settle(signal: AbortSignal): Promise<void>;
}

/** Makes a fresh Deno peer; one per test. */
export type DenoPeerFactory = () => Promise<DenoPeer>;

/** Every Deno backend, by name; libdatachannel, the Deno default, first. */
export const DENO_PEERS: Readonly<Record<string, DenoPeerFactory>> = {
  async libdatachannel() {
    const backend = await libdatachannel();
    return { backend, settle: (signal) => backend.idle(signal) };
  },
  werift() {
    const backend = werift();
    return Promise.resolve({
      backend,
      settle: (signal) => backend.idle(signal),
    });
  },
};
