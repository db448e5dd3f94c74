/**
 * Byte-exact transfers over a seam {@linkcode DataChannel}, for tests whose
 * two ends run in different places (a Deno process and a browser page).
 *
 * Both ends derive the same bytes from a seed (`tests/random.ts`), so no
 * payload crosses the test harness: the receiver checks every message's size
 * and content against the stream it expects.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import type { DataChannel } from "../../core/backend.ts";
import { TimeoutError } from "../../core/errors.ts";
import { random, randomBytes } from "../random.ts";

/** The sender waits while more than this is queued. */
export const HIGH_WATER = 1024 * 1024;
/** It resumes when the queue falls to this. */
export const LOW_WATER = 256 * 1024;

/** The message sizes `total` bytes are sent in, `chunk` bytes at most each. */
export function chunkSizes(total: number, chunk: number): number[] {
  const sizes: number[] = [];
  for (let sent = 0; sent < total; sent += chunk) {
    sizes.push(Math.min(chunk, total - sent));
  }
  return sizes;
}

/**
 * Sends one message per entry of `sizes`, filled from the stream of `seed`,
 * waiting on `bufferedAmount` so that the queue stays under
 * {@linkcode HIGH_WATER}. Resolves when everything is handed to the channel.
 */
export async function sendPattern(
  channel: DataChannel,
  sizes: readonly number[],
  seed: number,
): Promise<void> {
  const next = random(seed);
  channel.bufferedAmountLowThreshold = LOW_WATER;
  for (const size of sizes) {
    if (channel.bufferedAmount > HIGH_WATER) await drained(channel);
    channel.send(randomBytes(next, size));
  }
}

/** Resolves when the channel's queue falls to its low-water mark. */
function drained(channel: DataChannel): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  channel.onbufferedamountlow = () => {
    channel.onbufferedamountlow = null;
    resolve();
  };
  const onclose = channel.onclose;
  channel.onclose = () => {
    onclose?.();
    reject(new Error("the channel closed while the sender waited to drain"));
  };
  return promise.finally(() => {
    if (channel.readyState !== "closed") channel.onclose = onclose;
  });
}

/** What an {@linkcode Inbox} has seen. */
export interface InboxSummary {
  /** Messages received. */
  messages: number;
  /** Bytes received. */
  bytes: number;
}

/**
 * Collects a channel's messages from the moment it is made, so a test can
 * state what it expects after the peer has begun sending. It also records
 * the channel's close.
 */
export class Inbox {
  readonly #messages: Uint8Array[] = [];
  #read = 0;
  #bytes = 0;
  #closed = false;
  #wake: (() => void) | null = null;

  /** Takes over `channel.onmessage` and `channel.onclose`. */
  constructor(channel: DataChannel) {
    channel.onmessage = (data) => {
      // The backend may reuse the view after the handler returns.
      this.#messages.push(data.slice());
      this.#bytes += data.byteLength;
      this.#wake?.();
    };
    channel.onclose = () => {
      this.#closed = true;
      this.#wake?.();
    };
  }

  /** Whether the channel has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Counts of what arrived so far. */
  summary(): InboxSummary {
    return { messages: this.#messages.length, bytes: this.#bytes };
  }

  /**
   * Waits for one message per entry of `sizes` and checks each against the
   * stream of `seed`. Rejects on the first difference, if the channel
   * closes first, or after `timeoutMs`.
   */
  async expectPattern(
    sizes: readonly number[],
    seed: number,
    timeoutMs: number,
  ): Promise<InboxSummary> {
    const next = random(seed);
    const deadline = Date.now() + timeoutMs;
    let bytes = 0;
    for (let i = 0; i < sizes.length; i++) {
      const message = await this.#take(
        deadline,
        `message ${i} of ${sizes.length}`,
      );
      const expected = randomBytes(next, sizes[i]);
      if (message.byteLength !== sizes[i]) {
        throw new Error(
          `message ${i}: ${message.byteLength} bytes, expected ${sizes[i]}`,
        );
      }
      const at = firstDifference(message, expected);
      if (at >= 0) {
        throw new Error(
          `message ${i} (${sizes[i]} bytes) differs at byte ${at}`,
        );
      }
      bytes += message.byteLength;
    }
    return { messages: sizes.length, bytes };
  }

  /** Waits until the channel has closed, or `timeoutMs` passes. */
  async expectClose(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) await this.#sleep(deadline, "the channel to close");
  }

  async #take(deadline: number, what: string): Promise<Uint8Array> {
    while (this.#read === this.#messages.length) {
      if (this.#closed) throw new Error(`the channel closed before ${what}`);
      await this.#sleep(deadline, what);
    }
    // Drop the reference so an 8 MiB transfer is not held twice.
    const message = this.#messages[this.#read];
    this.#messages[this.#read++] = EMPTY;
    return message;
  }

  #sleep(deadline: number, what: string): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(
      () => reject(new TimeoutError(`timed out waiting for ${what}`)),
      Math.max(0, deadline - Date.now()),
    );
    this.#wake = resolve;
    return promise.finally(() => {
      clearTimeout(timer);
      this.#wake = null;
    });
  }
}

const EMPTY = new Uint8Array(0);

/** Lowercase hex of some bytes, to compare fingerprints across the harness. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The index of the first byte where `a` and `b` differ, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}
