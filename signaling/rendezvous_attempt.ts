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
import { Inbox } from "./inbox.ts";
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
  /** The peer's messages; ended when the peer has ended the attempt. */
  readonly #inbox = new Inbox<SignalingMessage>();
  #localEnded = false;
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
      if (this.#inbox.error) throw this.#inbox.error;
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

  receive(
    options: SignalingCallOptions = {},
  ): Promise<SignalingMessage | null> {
    return this.#inbox.next(options.signal);
  }

  close(): Promise<void> {
    if (this.#inbox.error || this.#localEnded) return Promise.resolve();
    this.#localEnded = true;
    try {
      this.#link.send(this, "end");
    } catch {
      // The connection is gone; the peer learns it from the server.
    }
    if (this.#inbox.ended) this.#finish();
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
    if (this.#inbox.error || this.#inbox.ended) return;
    if (this.#inbox.length >= this.#link.maxQueuedMessages) {
      this.fail(
        new P2prtcError(
          "ERR_SIGNALING_QUEUE_FULL",
          `the peer sent ${this.#link.maxQueuedMessages} signalling messages nobody read`,
        ),
        true,
      );
      return;
    }
    this.#inbox.push(message);
  }

  /** The peer has nothing more to send. */
  remoteEnd(): void {
    if (this.#inbox.error || this.#inbox.ended) return;
    this.#inbox.end();
    if (this.#localEnded) this.#finish();
  }

  /**
   * Fails the attempt with `error` for good, telling the peer (`notify`)
   * unless both sides had already ended it. Idempotent.
   */
  fail(error: Error, notify: boolean): void {
    if (this.#inbox.error || this.#done) return;
    this.#inbox.fail(error);
    if (notify) {
      try {
        this.#link.send(this, "abort", { reason: abortReason(error) });
      } catch {
        // The connection is gone; the peer learns it from the server.
      }
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#link.finished(this);
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
