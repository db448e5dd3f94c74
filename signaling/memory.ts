/**
 * An in-process pair of {@linkcode SignalingChannel}s, for tests, examples and
 * two peers in one program.
 *
 * @example Two ends, one message
 * ```ts
 * import { memorySignalingPair } from "./memory.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const [alice, bob] = memorySignalingPair();
 * await alice.send({ type: "offer", sdp: "v=0\r\n" });
 * const message = await bob.receive();
 * strictEqual(message?.type, "offer");
 * await alice.close();
 * strictEqual(await bob.receive(), null);
 * ```
 *
 * @module
 */

import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { P2prtcError, SignalingAbortedError } from "../core/errors.ts";

export { SignalingAbortedError };

/** Options for {@linkcode memorySignalingPair}. */
export interface MemorySignalingOptions {
  /**
   * The most messages one end holds unread; a send past it fails, as a
   * remote peer that never reads should not grow memory. Default 256.
   */
  maxQueuedMessages?: number;
}

class MemorySignalingChannel implements SignalingChannel {
  peer!: MemorySignalingChannel;
  readonly #max: number;
  #queue: (SignalingMessage | null)[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #error: Error | undefined;
  #closed = false;

  constructor(max: number) {
    this.#max = max;
  }

  send(
    message: SignalingMessage,
    options: SignalingCallOptions = {},
  ): Promise<void> {
    options.signal?.throwIfAborted();
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed) {
      return Promise.reject(
        new P2prtcError("ERR_SIGNALING_CLOSED", "signalling channel closed"),
      );
    }
    if (this.peer.#queue.length >= this.#max) {
      return Promise.reject(
        new P2prtcError(
          "ERR_SIGNALING_QUEUE_FULL",
          `the peer left ${this.#max} signalling messages unread`,
        ),
      );
    }
    this.peer.#deliver(structuredClone(message));
    return Promise.resolve();
  }

  async receive(
    options: SignalingCallOptions = {},
  ): Promise<SignalingMessage | null> {
    while (this.#queue.length === 0) {
      if (this.#error) throw this.#error;
      options.signal?.throwIfAborted();
      this.#waiter ??= Promise.withResolvers();
      const wait = this.#waiter.promise;
      if (!options.signal) {
        await wait;
        continue;
      }
      const signal = options.signal;
      const { promise: aborted, reject } = Promise.withResolvers<never>();
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([wait, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
    const message = this.#queue.shift()!;
    // The end-of-channel marker stays, so later receives also see the end.
    if (message === null) this.#queue.unshift(null);
    return message;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.peer.#deliver(null);
    }
    return Promise.resolve();
  }

  abort(reason?: unknown): void {
    if (this.#error) return;
    this.#error = new SignalingAbortedError(reason);
    this.#closed = true;
    this.peer.#fail(new SignalingAbortedError(reason));
    this.#wake();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #deliver(message: SignalingMessage | null): void {
    if (this.#error) return;
    this.#queue.push(message);
    this.#wake();
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#queue = [];
    this.#wake();
  }

  #wake(): void {
    this.#waiter?.resolve();
    this.#waiter = undefined;
  }
}

/** Makes two connected signalling channels. */
export function memorySignalingPair(
  options: MemorySignalingOptions = {},
): [SignalingChannel, SignalingChannel] {
  const max = options.maxQueuedMessages ?? 256;
  const a = new MemorySignalingChannel(max);
  const b = new MemorySignalingChannel(max);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
