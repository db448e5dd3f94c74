/**
 * One connection attempt of the WebSocket rendezvous client
 * (`websocket.ts`): a {@linkcode SignalingChannel} whose frames share the
 * client's socket with every other attempt.
 *
 * @module
 */

import {
  P2prtcError,
  SignalingAbortedError,
  TimeoutError,
} from "../core/errors.ts";
import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { signalingMessageToJson } from "../core/signaling_json.ts";
import { MAX_REASON_LENGTH } from "./rendezvous_protocol.ts";

/** What an attempt needs from its client. */
export interface AttemptLink {
  readonly maxQueuedMessages: number;
  send(
    attempt: RendezvousAttempt,
    op: "data" | "end" | "abort",
    extra?: Record<string, unknown>,
  ): void;
  finished(attempt: RendezvousAttempt): void;
}

/** One attempt: a {@linkcode SignalingChannel} over the shared socket. */
export class RendezvousAttempt implements SignalingChannel {
  readonly remotePeer: string;
  readonly id: string;
  /** Whether this side opened the attempt. */
  readonly dialer: boolean;
  readonly #link: AttemptLink;
  readonly #timer: ReturnType<typeof setTimeout>;
  #queue: SignalingMessage[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #error: Error | undefined;
  #localEnded = false;
  #remoteEnded = false;
  #done = false;

  constructor(
    link: AttemptLink,
    remotePeer: string,
    id: string,
    dialer: boolean,
    lifetime: number,
  ) {
    this.#link = link;
    this.remotePeer = remotePeer;
    this.id = id;
    this.dialer = dialer;
    this.#timer = setTimeout(
      () =>
        this.fail(
          new TimeoutError(
            `the rendezvous attempt with ${remotePeer} was open for ${lifetime} ms`,
          ),
          true,
        ),
      lifetime,
    );
  }

  send(
    message: SignalingMessage,
    options: SignalingCallOptions = {},
  ): Promise<void> {
    try {
      options.signal?.throwIfAborted();
      if (this.#error) throw this.#error;
      if (this.#localEnded) {
        throw new P2prtcError(
          "ERR_SIGNALING_CLOSED",
          "signalling channel closed",
        );
      }
      this.#link.send(this, "data", { data: signalingMessageToJson(message) });
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  async receive(
    options: SignalingCallOptions = {},
  ): Promise<SignalingMessage | null> {
    while (this.#queue.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#remoteEnded) return null;
      options.signal?.throwIfAborted();
      this.#waiter ??= Promise.withResolvers();
      const wait = this.#waiter.promise;
      const signal = options.signal;
      if (!signal) {
        await wait;
        continue;
      }
      const { promise: aborted, reject } = Promise.withResolvers<never>();
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([wait, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
    return this.#queue.shift()!;
  }

  close(): Promise<void> {
    if (this.#error || this.#localEnded) return Promise.resolve();
    this.#localEnded = true;
    try {
      this.#link.send(this, "end");
    } catch {
      // The connection is gone; the peer learns it from the server.
    }
    if (this.#remoteEnded) this.#finish();
    return Promise.resolve();
  }

  abort(reason?: unknown): void {
    this.fail(new SignalingAbortedError(reason), true);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A message from the peer. */
  deliver(message: SignalingMessage): void {
    if (this.#error || this.#remoteEnded) return;
    if (this.#queue.length >= this.#link.maxQueuedMessages) {
      this.fail(
        new P2prtcError(
          "ERR_SIGNALING_QUEUE_FULL",
          `the peer sent ${this.#link.maxQueuedMessages} signalling messages nobody read`,
        ),
        true,
      );
      return;
    }
    this.#queue.push(message);
    this.#wake();
  }

  /** The peer has nothing more to send. */
  remoteEnd(): void {
    if (this.#error || this.#remoteEnded) return;
    this.#remoteEnded = true;
    this.#wake();
    if (this.#localEnded) this.#finish();
  }

  /**
   * Fails the attempt with `error` for good, telling the peer (`notify`)
   * unless both sides had already ended it. Idempotent.
   */
  fail(error: Error, notify: boolean): void {
    if (this.#error || this.#done) return;
    this.#error = error;
    this.#queue = [];
    if (notify) {
      try {
        this.#link.send(this, "abort", { reason: abortReason(error) });
      } catch {
        // The connection is gone; the peer learns it from the server.
      }
    }
    this.#wake();
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#link.finished(this);
  }

  #wake(): void {
    this.#waiter?.resolve();
    this.#waiter = undefined;
  }
}

/** What the peer is told when an attempt is aborted: a code, not a story. */
function abortReason(error: Error): string {
  const cause = error instanceof SignalingAbortedError ? error.cause : error;
  const code = cause instanceof P2prtcError
    ? cause.code
    : error instanceof P2prtcError
    ? error.code
    : "aborted";
  return code.slice(0, MAX_REASON_LENGTH);
}
