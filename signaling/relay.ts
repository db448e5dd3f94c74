/**
 * The spec's signalling protocol, `/webrtc-signaling/0.0.1`
 * (libp2p/specs webrtc/webrtc.md), as a {@linkcode SignalingChannel} over any
 * byte stream: a stream on a circuit-relay connection, a data channel of an
 * existing WebRTC connection, a WebSocket, a pipe.
 *
 * On the wire, each message is an unsigned varint length and then a protobuf
 * `SignalingMessage { type = 1; data = 2 }` (`proto/signaling.proto`): the SDP
 * offer, the SDP answer, or an ICE candidate as the JSON of its
 * `RTCIceCandidateInit`, as js-libp2p writes it. The end of candidates is
 * read in every form peers send it: no message at all (js-libp2p today), a
 * candidate message without data, the JSON `null` (js-libp2p before 2025),
 * the JSON `""`, or a candidate whose `candidate` is `""` (a browser's
 * end-of-generation); each is received as `candidate: null`. A `null`
 * candidate is sent as JSON `null`, which js-libp2p reads as the end.
 *
 * Every message is bounded in both directions, 64 KiB by default: a prefix
 * announcing more is refused before any of the body is buffered. js-libp2p
 * sets no per-message limit of its own (its reads stop at a 4 MiB buffer),
 * and SDPs are a few KiB, so the two interoperate. What the peer sends that is
 * not a signalling message fails the channel with a typed error and resets
 * the stream, so the peer learns of it too.
 *
 * @example A channel at each end of an in-memory byte-stream pair
 * ```ts
 * import { relaySignaling } from "./relay.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * // Two pipes make a byte stream in each direction; each holds a few chunks,
 * // so a send resolves before the other end reads it.
 * const pipe = () =>
 *   new TransformStream<Uint8Array, Uint8Array>({}, {}, { highWaterMark: 8 });
 * const there = pipe();
 * const back = pipe();
 * const alice = relaySignaling({
 *   readable: back.readable,
 *   writable: there.writable,
 * });
 * const bob = relaySignaling({
 *   readable: there.readable,
 *   writable: back.writable,
 * });
 *
 * await alice.send({ type: "offer", sdp: "v=0\r\n" });
 * strictEqual((await bob.receive())?.type, "offer");
 * const candidate = {
 *   candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
 *   sdpMid: "0",
 *   sdpMLineIndex: 0,
 * };
 * await bob.send({ type: "candidate", candidate });
 * const received = await alice.receive();
 * strictEqual(received?.type === "candidate" && received.candidate?.sdpMid, "0");
 *
 * // close() ends the sender's half: the other end then receives null.
 * await alice.close();
 * strictEqual(await bob.receive(), null);
 * await bob.close();
 * strictEqual(await alice.receive(), null);
 * ```
 *
 * @example The relay flow with transports (a sketch)
 * ```ts ignore
 * // The listener answers signalling streams that peers open to it, for
 * // example over a circuit-relay connection they share:
 * transport.handle(SIGNALING_PROTOCOL, async (stream, conn) => {
 *   await transport.connect(relaySignaling(stream), {
 *     remotePeer: conn.remotePeer,
 *     role: "answerer",
 *   });
 * });
 *
 * // The dialer opens one and offers:
 * const stream = await relayConnection.newStream(SIGNALING_PROTOCOL);
 * const conn = await transport.connect(relaySignaling(stream), {
 *   remotePeer,
 *   role: "offerer",
 * });
 * ```
 *
 * @module
 */

import type { IceCandidate } from "../core/backend.ts";
import {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
} from "../core/errors.ts";
import {
  encodeLengthPrefixed,
  LengthPrefixedDecoder,
} from "../core/length_prefixed.ts";
import { iceCandidateFromJson } from "../core/signaling_json.ts";
import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { SignalingMessage as WireMessage } from "../proto/signaling.ts";

export type {
  IceCandidate,
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
};

/** The protocol id of the spec's signalling protocol. */
export const SIGNALING_PROTOCOL = "/webrtc-signaling/0.0.1";

/**
 * The default limit on one signalling message, in bytes, its length prefix
 * not counted.
 */
export const DEFAULT_MAX_SIGNALING_MESSAGE_SIZE = 64 * 1024;

/**
 * The byte stream the protocol runs over: any pair of Web Streams.
 *
 * `WebRTCStream` and `NegotiatedStream` (what `newStream` and a protocol
 * handler give) are such streams as they are; anything else, such as a
 * js-libp2p stream or a WebSocket, needs an adapter that keeps these
 * meanings:
 * - closing `writable` ends this side's half of the stream, and the peer's
 *   `readable` then ends cleanly;
 * - aborting `writable` resets the stream: the peer's `readable` and
 *   `writable` fail rather than end;
 * - cancelling `readable` says nothing more will be read.
 */
export interface SignalingByteStream {
  /** The bytes the peer sends, in order. Chunks may split or join messages. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to send to the peer, in order. */
  readonly writable: WritableStream<Uint8Array>;
}

/** Options for {@linkcode relaySignaling}. */
export interface RelaySignalingOptions {
  /**
   * The largest message sent or received, in bytes, its length prefix not
   * counted. Default {@linkcode DEFAULT_MAX_SIGNALING_MESSAGE_SIZE}.
   */
  maxMessageSize?: number;
  /**
   * The most sends waiting to be written; a send past it fails, as a peer
   * that never reads should not grow memory. Default 256.
   */
  maxQueuedMessages?: number;
}

/**
 * Runs the `/webrtc-signaling/0.0.1` protocol over `stream` and returns it as
 * a {@linkcode SignalingChannel}. The channel takes both halves' locks for
 * its lifetime.
 *
 * - `send` writes one message; its signal gives up the wait (the message
 *   stays queued and keeps its place in the order).
 * - `receive` reads the next message, or `null` once the peer has ended its
 *   half cleanly between two messages; its signal gives up the wait without
 *   losing anything, and the next call goes on where it stopped.
 * - `close` ends this side's half once every send is written; messages can
 *   still be received until the peer ends its own.
 * - `abort` resets the stream (aborts `writable`, cancels `readable`): the
 *   peer's calls fail with {@linkcode SignalingAbortedError}.
 *
 * Failures are typed: {@linkcode SignalingMessageTooLargeError} and
 * {@linkcode MalformedSignalingMessageError} for what the peer sent (the
 * stream is then reset), {@linkcode SignalingAbortedError} once the channel
 * was aborted or the stream failed under it (the stream's error is the
 * `cause`), and a `P2prtcError` with code `ERR_SIGNALING_CLOSED` or
 * `ERR_SIGNALING_QUEUE_FULL` for a send after `close` or past
 * `maxQueuedMessages`.
 *
 * @throws {TypeError} if either half of `stream` is locked, or an option is
 * out of range.
 */
export function relaySignaling(
  stream: SignalingByteStream,
  options: RelaySignalingOptions = {},
): SignalingChannel {
  const maxMessageSize = options.maxMessageSize ??
    DEFAULT_MAX_SIGNALING_MESSAGE_SIZE;
  const maxQueued = options.maxQueuedMessages ?? 256;
  if (!(Number.isSafeInteger(maxQueued) && maxQueued > 0)) {
    throw new TypeError(
      `invalid maxQueuedMessages ${maxQueued}: it must be a positive integer`,
    );
  }
  // The decoder checks maxMessageSize.
  const decoder = new LengthPrefixedDecoder({
    maxLength: maxMessageSize,
    tooLarge: (size, limit) => new SignalingMessageTooLargeError(size, limit),
  });
  const reader = stream.readable.getReader();
  let writer: WritableStreamDefaultWriter<Uint8Array>;
  try {
    writer = stream.writable.getWriter();
  } catch (error) {
    reader.releaseLock();
    throw error;
  }
  return new RelaySignalingChannel(reader, writer, decoder, maxQueued);
}

class RelaySignalingChannel implements SignalingChannel {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder: LengthPrefixedDecoder;
  readonly #maxQueued: number;
  /** Aborted with the channel, so no wait outlives it. */
  readonly #stop = new AbortController();
  /** A read in progress; a receive given up on its signal leaves it here. */
  #read: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #queued = 0;
  #ended = false;
  #closing: Promise<void> | undefined;
  /** Set once the channel is dead; every later call fails with it. */
  #error: Error | undefined;

  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    decoder: LengthPrefixedDecoder,
    maxQueued: number,
  ) {
    this.#reader = reader;
    this.#writer = writer;
    this.#decoder = decoder;
    this.#maxQueued = maxQueued;
  }

  send(
    message: SignalingMessage,
    options: SignalingCallOptions = {},
  ): Promise<void> {
    let bytes: Uint8Array;
    try {
      options.signal?.throwIfAborted();
      if (this.#error) throw this.#error;
      if (this.#closing) {
        throw new P2prtcError(
          "ERR_SIGNALING_CLOSED",
          "signalling channel closed",
        );
      }
      if (this.#queued >= this.#maxQueued) {
        throw new P2prtcError(
          "ERR_SIGNALING_QUEUE_FULL",
          `${this.#maxQueued} signalling messages are waiting to be written`,
        );
      }
      const body = encodeMessage(message);
      if (body.length > this.#decoder.maxLength) {
        throw new SignalingMessageTooLargeError(
          body.length,
          this.#decoder.maxLength,
        );
      }
      bytes = encodeLengthPrefixed(body);
    } catch (error) {
      return Promise.reject(error);
    }
    // Written at once, with no await before: sends keep their call order.
    this.#queued++;
    const writing = this.#writer.write(bytes).finally(() => this.#queued--);
    return this.#wait(writing, options.signal).catch((error) => {
      throw this.#translate(error, options.signal);
    });
  }

  async receive(
    options: SignalingCallOptions = {},
  ): Promise<SignalingMessage | null> {
    while (true) {
      if (this.#error) throw this.#error;
      options.signal?.throwIfAborted();
      const body = this.#decode(() => this.#decoder.next());
      if (body !== undefined) return this.#decode(() => decodeMessage(body));
      if (this.#ended) return null;
      const read = this.#read ??= this.#reader.read();
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await this.#wait(read, options.signal);
      } catch (error) {
        throw this.#translate(error, options.signal);
      }
      if (this.#error) throw this.#error;
      // Two receives may wait on one read; the first one back takes it.
      if (this.#read !== read) continue;
      this.#read = undefined;
      if (result.done) {
        if (!this.#decoder.atBoundary) {
          throw this.#fail(
            new MalformedSignalingMessageError(
              "the stream ended inside a signalling message",
            ),
          );
        }
        this.#ended = true;
        return null;
      }
      this.#decoder.push(result.value);
    }
  }

  close(): Promise<void> {
    return this.#closing ??= (async () => {
      if (this.#error) throw this.#error;
      try {
        await this.#wait(this.#writer.close());
      } catch (error) {
        throw this.#translate(error);
      }
    })();
  }

  abort(reason?: unknown): void {
    this.#fail(new SignalingAbortedError(reason), reason);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      this.abort();
    }
  }

  /** Runs a decoding step; what it throws is the peer's fault. */
  #decode<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      throw this.#fail(
        error instanceof P2prtcError
          ? error
          : new MalformedSignalingMessageError(
            "not a signalling message",
            { cause: error },
          ),
      );
    }
  }

  /**
   * Makes `error` the channel's for good and resets the stream, once; the
   * first error wins. Returns the channel's error.
   */
  #fail(error: Error, reason: unknown = error): Error {
    if (this.#error) return this.#error;
    this.#error = error;
    this.#stop.abort(error);
    this.#writer.abort(reason).catch(() => {});
    this.#reader.cancel(reason).catch(() => {});
    return error;
  }

  /**
   * What a wait that failed with `error` rejects with: the signal's reason
   * if the caller gave up, the channel's error if it is dead, and otherwise
   * the stream's failure, which kills the channel.
   */
  #translate(error: unknown, signal?: AbortSignal): unknown {
    if (this.#error) return this.#error;
    if (signal?.aborted && error === signal.reason) return error;
    return this.#fail(new SignalingAbortedError(error));
  }

  /**
   * Waits for `promise`, giving up when `signal` or the channel aborts; a
   * promise given up on must not reject unhandled later.
   */
  #wait<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
    promise.catch(() => {});
    const signals = signal ? [signal, this.#stop.signal] : [this.#stop.signal];
    for (const s of signals) if (s.aborted) return Promise.reject(s.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (event: Event) =>
        done(() => reject((event.target as AbortSignal).reason));
      const done = (settle: () => void) => {
        for (const s of signals) s.removeEventListener("abort", onAbort);
        settle();
      };
      for (const s of signals) {
        s.addEventListener("abort", onAbort, { once: true });
      }
      promise.then(
        (value) => done(() => resolve(value)),
        (error) => done(() => reject(error)),
      );
    });
  }
}

/** The protobuf body of `message`. */
function encodeMessage(message: SignalingMessage): Uint8Array {
  switch (message.type) {
    case "offer":
      return WireMessage.encode({
        type: WireMessage.Type.SDP_OFFER,
        data: message.sdp,
      });
    case "answer":
      return WireMessage.encode({
        type: WireMessage.Type.SDP_ANSWER,
        data: message.sdp,
      });
    case "candidate": {
      const c = message.candidate;
      // The fields of RTCIceCandidate.toJSON(), which js-libp2p sends.
      const init = c === null ? null : {
        candidate: c.candidate,
        sdpMid: c.sdpMid,
        sdpMLineIndex: c.sdpMLineIndex,
        usernameFragment: c.usernameFragment,
      };
      return WireMessage.encode({
        type: WireMessage.Type.ICE_CANDIDATE,
        data: JSON.stringify(init),
      });
    }
    default:
      throw new TypeError(
        `unknown signalling message type ${
          (message as { type: unknown }).type
        }`,
      );
  }
}

/**
 * Reads one protobuf body.
 *
 * @throws {MalformedSignalingMessageError} for anything but a signalling
 * message.
 */
function decodeMessage(body: Uint8Array): SignalingMessage {
  let wire: WireMessage;
  try {
    wire = WireMessage.decode(body);
  } catch (error) {
    throw new MalformedSignalingMessageError(
      "a signalling message that is not valid protobuf",
      { cause: error },
    );
  }
  // proto3 leaves a zero enum out unless it has explicit presence, as ours
  // and js-libp2p's do; a peer without it sends an offer with no type.
  switch (wire.type ?? WireMessage.Type.SDP_OFFER) {
    case WireMessage.Type.SDP_OFFER:
      return { type: "offer", sdp: sdpOf(wire, "offer") };
    case WireMessage.Type.SDP_ANSWER:
      return { type: "answer", sdp: sdpOf(wire, "answer") };
    case WireMessage.Type.ICE_CANDIDATE:
      return { type: "candidate", candidate: decodeCandidate(wire.data) };
    default:
      throw new MalformedSignalingMessageError(
        `unknown signalling message type ${wire.type}`,
      );
  }
}

function sdpOf(wire: WireMessage, type: "offer" | "answer"): string {
  if (!wire.data) {
    throw new MalformedSignalingMessageError(`an SDP ${type} without its SDP`);
  }
  return wire.data;
}

/**
 * Reads the JSON of an `RTCIceCandidateInit`; every end-of-candidates form
 * is `null`.
 */
function decodeCandidate(data: string | undefined): IceCandidate | null {
  if (data === undefined || data === "") return null;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (error) {
    throw new MalformedSignalingMessageError(
      "an ICE candidate that is not JSON",
      { cause: error },
    );
  }
  // The JSON string "" is an end-of-candidates form too.
  return json === "" ? null : iceCandidateFromJson(json);
}
