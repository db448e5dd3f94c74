/**
 * The seam between the core and a signalling channel.
 *
 * Private-to-private `/webrtc` needs a way to exchange one SDP offer, one SDP
 * answer and trickled ICE candidates with one remote peer, in order. Any
 * ordered, authenticated message channel will do: the spec's relay protocol,
 * a WebSocket rendezvous, or something a user writes.
 *
 * @module
 */

import type { IceCandidate } from "./backend.ts";

/** One signalling message. */
export type SignalingMessage =
  | {
    /** An SDP offer. */
    type: "offer";
    /** The SDP text. */
    sdp: string;
  }
  | {
    /** An SDP answer. */
    type: "answer";
    /** The SDP text. */
    sdp: string;
  }
  | {
    /** A trickled ICE candidate. */
    type: "candidate";
    /** The candidate, or `null` at the end of candidates. */
    candidate: IceCandidate | null;
  };

/** Options for calls on a {@linkcode SignalingChannel} that may wait. */
export interface SignalingCallOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
}

/**
 * An ordered message channel to one remote peer, used for one connection
 * attempt.
 */
export interface SignalingChannel extends AsyncDisposable {
  /** Sends one message, in order after the ones sent before it. */
  send(
    message: SignalingMessage,
    options?: SignalingCallOptions,
  ): Promise<void>;
  /** Receives the next message, or `null` once the peer has closed. */
  receive(options?: SignalingCallOptions): Promise<SignalingMessage | null>;
  /** Closes the channel after the messages already sent. Idempotent. */
  close(): Promise<void>;
  /**
   * Aborts the channel: the peer learns that the attempt failed (the relay
   * protocol resets its stream). Idempotent.
   */
  abort(reason?: unknown): void;
}
