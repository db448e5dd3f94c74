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
import { Inbox } from "./inbox.ts";

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
  readonly #inbox = new Inbox<SignalingMessage>();
  #closed = false;

  constructor(max: number) {
    this.#max = max;
  }

  send(
    message: SignalingMessage,
    options: SignalingCallOptions = {},
  ): Promise<void> {
    options.signal?.throwIfAborted();
    const error = this.#inbox.error;
    if (error) return Promise.reject(error);
    if (this.#closed) {
      return Promise.reject(
        new P2prtcError("ERR_SIGNALING_CLOSED", "signalling channel closed"),
      );
    }
    if (this.peer.#inbox.length >= this.#max) {
      return Promise.reject(
        new P2prtcError(
          "ERR_SIGNALING_QUEUE_FULL",
          `the peer left ${this.#max} signalling messages unread`,
        ),
      );
    }
    this.peer.#inbox.push(structuredClone(message));
    return Promise.resolve();
  }

  receive(
    options: SignalingCallOptions = {},
  ): Promise<SignalingMessage | null> {
    return this.#inbox.next(options.signal);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.peer.#inbox.end();
    }
    return Promise.resolve();
  }

  abort(reason?: unknown): void {
    if (this.#inbox.error) return;
    this.#inbox.fail(new SignalingAbortedError(reason));
    this.#closed = true;
    this.peer.#inbox.fail(new SignalingAbortedError(reason));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
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
