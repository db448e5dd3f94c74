/**
 * The count of what a werift backend has open, and waiting for it to reach
 * zero.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import type { HandleCount } from "../../core/backend.ts";
import { TimeoutError } from "../../core/errors.ts";

/** Counts open handles and wakes whoever waits for them all to be gone. */
export class Handles {
  #counts: HandleCount = { peerConnections: 0, dataChannels: 0 };
  #waiters = new Set<() => void>();

  /** A copy of the counts. */
  count(): HandleCount {
    return { ...this.#counts };
  }

  /** A handle was opened (`+1`) or released (`-1`). */
  add(kind: keyof HandleCount, delta: 1 | -1): void {
    this.#counts[kind] += delta;
    if (this.#idle()) {
      for (const wake of [...this.#waiters]) wake();
    }
  }

  /** Resolves once both counts are zero; rejects when `signal` aborts. */
  idle(signal?: AbortSignal): Promise<void> {
    if (this.#idle()) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const abort = () => {
      this.#waiters.delete(wake);
      const { peerConnections, dataChannels } = this.#counts;
      reject(
        new TimeoutError(
          `werift still has ${peerConnections} peer connection(s) and ${dataChannels} data channel(s) open`,
        ),
      );
    };
    const wake = () => {
      this.#waiters.delete(wake);
      signal?.removeEventListener("abort", abort);
      resolve();
    };
    if (signal?.aborted) {
      abort();
      return promise;
    }
    this.#waiters.add(wake);
    signal?.addEventListener("abort", abort, { once: true });
    return promise;
  }

  #idle(): boolean {
    return this.#counts.peerConnections === 0 &&
      this.#counts.dataChannels === 0;
  }
}
