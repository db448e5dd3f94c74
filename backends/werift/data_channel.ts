/**
 * A {@linkcode DataChannel} over a werift `RTCDataChannel`.
 *
 * Sending goes through a queue of this module's own. werift keeps one
 * pending promise per message handed to it and wakes every one of them on
 * each SACK, so thousands of small messages in its queue cost quadratic time
 * (a loop of 10 000 small writes pinned a core for minutes). Only
 * {@linkcode WERIFT_MAX_MESSAGES} messages are in werift at a time; the rest
 * wait here, and `bufferedAmount` and its low-water event cover both.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { RTCDataChannel } from "werift";
import type { DataChannel, DataChannelState } from "../../core/backend.ts";
import { FrameTooLargeError, P2prtcError } from "../../core/errors.ts";
import { MAX_MESSAGE_SIZE } from "./config.ts";
import type { Dispatcher } from "./dispatcher.ts";
import {
  messageOf,
  PPID_BINARY_EMPTY,
  SCTP_ESTABLISHED,
  type SctpAssociation,
  type SctpTransportInternals,
} from "./internals.ts";

/**
 * How many messages may be inside werift at once, per channel. Measured
 * between two werift connections: 8 gives about 10 MB/s for both 1000-byte
 * and 16 KiB messages; 64 gives 7 to 9; with no limit 1000-byte messages
 * fall to 3 MB/s.
 */
export const WERIFT_MAX_MESSAGES = 8;

const encoder = new TextEncoder();

/** What a channel needs from the peer connection it belongs to. */
export interface ChannelOwner {
  /** Delivers the events of the connection and all its channels, in order. */
  readonly dispatch: Dispatcher;
  /** The channel has delivered `onclose`; called once. */
  channelFinished(channel: WeriftDataChannel): void;
}

/** werift's hook for the bytes it holds: `+n` on send, `-n` once handed to SCTP. */
interface BufferedAmountHook {
  addBufferedAmount(amount: number): void;
}

/** One data channel; see the seam's {@linkcode DataChannel}. */
export class WeriftDataChannel implements DataChannel {
  /** The channel became open. */
  onopen: (() => void) | null = null;
  /** A message arrived; text arrives as its UTF-8 bytes. */
  onmessage: ((data: Uint8Array) => void) | null = null;
  /** `bufferedAmount` fell to the threshold. */
  onbufferedamountlow: (() => void) | null = null;
  /** The channel closed. */
  onclose: (() => void) | null = null;
  /** werift reported an error. */
  onerror: ((error: Error) => void) | null = null;

  readonly #channel: RTCDataChannel;
  readonly #owner: ChannelOwner;
  readonly #unsubscribe: (() => void)[] = [];
  #state: DataChannelState = "connecting";
  #finished = false;
  /** Messages not yet handed to werift, each a copy the caller cannot touch. */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /** Messages handed to werift and not yet given to its SCTP. */
  #inWerift = 0;
  #lowThreshold = 0;

  /** Wraps `channel` at once, before werift can announce it open. */
  constructor(channel: RTCDataChannel, owner: ChannelOwner) {
    this.#channel = channel;
    this.#owner = owner;
    const dispatch = owner.dispatch;
    const subscriptions = [
      channel.stateChanged.subscribe((state) => {
        if (state === "open") dispatch.post(() => this.#opened());
        else if (state === "closed") dispatch.post(() => this.finish());
      }),
      channel.onMessage.subscribe((data) => {
        dispatch.post(() => this.#received(data));
      }),
      channel.error.subscribe((error) => {
        dispatch.post(() => {
          if (!this.#finished) this.onerror?.(asError(error));
        });
      }),
    ];
    for (const s of subscriptions) this.#unsubscribe.push(s.unSubscribe);
    // werift opens the opener's end only when the peer's DCEP ACK arrives.
    // RFC 8832 lets the opener send right after its OPEN, and libdatachannel
    // and browsers open it then, so this end opens when werift gives it its
    // id, which is when werift sends the OPEN.
    const opener = !channel.negotiated && !channel.isCreatedByRemote;
    onIdGiven(channel, () => {
      if (opener) dispatch.post(() => this.#opened());
    });
    // werift lowers its count once per message, when the message has been
    // given to SCTP: the moment to hand over the next one.
    const hook = channel as unknown as BufferedAmountHook;
    const add = hook.addBufferedAmount.bind(channel);
    hook.addBufferedAmount = (amount) => {
      const before = this.bufferedAmount;
      add(amount);
      if (amount < 0) {
        this.#inWerift--;
        this.#pump();
        this.#checkLow(before);
      }
    };
    // A negotiated channel on a live association opened inside werift's
    // createDataChannel, before anyone could listen.
    if (channel.readyState === "open") dispatch.post(() => this.#opened());
  }

  /** The SCTP stream id, `null` until werift has assigned one. */
  get id(): number | null {
    return this.#channel.id ?? null;
  }

  /** The opener's label. */
  get label(): string {
    return this.#channel.label;
  }

  /** The state as the handlers have seen it. */
  get readyState(): DataChannelState {
    return this.#state;
  }

  /**
   * Bytes not yet given to SCTP: queued here, or held by werift, which
   * lowers its part only when its whole outbound queue has gone out.
   */
  get bufferedAmount(): number {
    return this.#queuedBytes + this.#channel.bufferedAmount;
  }

  /** The level `onbufferedamountlow` fires at. */
  get bufferedAmountLowThreshold(): number {
    return this.#lowThreshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    if (!(value >= 0 && value <= 0xffffffff)) {
      throw new RangeError(
        `bufferedAmountLowThreshold must be in 0..4294967295, got ${value}`,
      );
    }
    this.#lowThreshold = value;
  }

  /** Queues a copy of `data`. */
  send(data: Uint8Array): void {
    if (this.#state !== "open") {
      throw new P2prtcError(
        "ERR_DATA_CHANNEL_NOT_OPEN",
        `cannot send on a data channel that is ${this.#state}`,
      );
    }
    const limit = this.#maxMessageSize();
    if (data.byteLength > limit) {
      throw new FrameTooLargeError(data.byteLength, limit);
    }
    // werift queues the Buffer it is given and slices its retransmission
    // chunks from it, so it must own a copy; so must the queue here.
    const copy = Buffer.from(data);
    this.#owner.dispatch.hold(() => {
      if (this.#queue.length === 0 && this.#inWerift < WERIFT_MAX_MESSAGES) {
        this.#handOver(copy);
      } else {
        this.#queue.push(copy);
        this.#queuedBytes += copy.byteLength;
      }
    });
  }

  /** Closes once everything sent has been acknowledged; `onclose` follows. */
  close(): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    this.#owner.dispatch.hold(() => this.#closeWhenDelivered());
  }

  /** Delivers `onclose` once and forgets the handlers and the queue. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = "closed";
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    const handler = this.onclose;
    this.onopen = null;
    this.onmessage = null;
    this.onbufferedamountlow = null;
    this.onclose = null;
    this.onerror = null;
    this.#owner.channelFinished(this);
    handler?.();
  }

  #opened(): void {
    if (this.#finished || this.#state !== "connecting") return;
    this.#state = "open";
    this.onopen?.();
  }

  #received(data: string | Buffer): void {
    // As in the W3C API, nothing is delivered once close() has been called.
    if (this.#finished || this.#state !== "open") return;
    this.onmessage?.(
      typeof data === "string"
        ? encoder.encode(data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  /** Hands queued messages to werift while it has room. */
  #pump(): void {
    while (
      !this.#finished && this.#queue.length > 0 &&
      this.#inWerift < WERIFT_MAX_MESSAGES
    ) {
      const message = this.#queue.shift()!;
      this.#queuedBytes -= message.byteLength;
      try {
        this.#handOver(message);
      } catch (error) {
        // This runs inside werift's send loop: report, do not unwind it.
        this.#owner.dispatch.post(() => {
          if (!this.#finished) this.onerror?.(asError(error));
        });
      }
    }
  }

  #handOver(message: Buffer): void {
    if (message.byteLength === 0) {
      this.#sendEmpty();
      return;
    }
    this.#inWerift++;
    try {
      this.#channel.send(message);
    } catch (error) {
      this.#inWerift--;
      throw new P2prtcError(
        "ERR_SEND_FAILED",
        `werift could not send ${message.byteLength} bytes: ${
          messageOf(error)
        }`,
        { cause: error },
      );
    }
  }

  #checkLow(before: number): void {
    const threshold = this.#lowThreshold;
    if (before > threshold && this.bufferedAmount <= threshold) {
      this.#owner.dispatch.post(() => {
        if (!this.#finished) this.onbufferedamountlow?.();
      });
    }
  }

  /** The smaller of ours and the peer's `a=max-message-size` (0: no limit). */
  #maxMessageSize(): number {
    const remote = this.#channel.sctp.remoteMaxMessageSize;
    return remote > 0 ? Math.min(remote, MAX_MESSAGE_SIZE) : MAX_MESSAGE_SIZE;
  }

  /**
   * werift resets the stream as soon as close() is called, and a werift peer
   * drops the stream's DATA the moment the reset request arrives, even data
   * sent before it that is still queued or in flight. So the reset waits
   * until everything sent on this channel has been acknowledged, which is
   * what the W3C API promises for close().
   */
  #closeWhenDelivered(): void {
    const channel = this.#channel;
    const transport = channel.sctp as unknown as SctpTransportInternals;
    const sctp = channel.sctp.sctp as unknown as SctpAssociation;
    const id = channel.id;
    const pending = () =>
      this.#queue.length > 0 ||
      transport.dataChannelQueue.some(([owner]) => owner === channel) ||
      sctp.outboundQueue.some((chunk) => chunk.streamId === id) ||
      sctp.sentQueue.some((chunk) => chunk.streamId === id);
    if (
      this.#finished || sctp.associationState !== SCTP_ESTABLISHED ||
      id === undefined || !pending()
    ) {
      channel.close();
      return;
    }
    const subscription = sctp.flush.subscribe(() => {
      if (pending()) return;
      subscription.unSubscribe();
      if (!this.#finished) this.#owner.dispatch.hold(() => channel.close());
    });
    this.#unsubscribe.push(subscription.unSubscribe);
  }

  /**
   * werift turns an empty Buffer into zero SCTP chunks yet still advances the
   * stream sequence number, which stalls the peer's ordered delivery for
   * good. RFC 8831 sends an empty message as one byte with its own PPID.
   */
  #sendEmpty(): void {
    const sctp = this.#channel.sctp.sctp as unknown as SctpAssociation;
    const id = this.#channel.id;
    if (sctp.associationState !== SCTP_ESTABLISHED || id === undefined) {
      throw new P2prtcError(
        "ERR_SEND_FAILED",
        "the SCTP association is not established",
      );
    }
    sctp.send(id, PPID_BINARY_EMPTY, Buffer.alloc(1), { ordered: true })
      .catch(() => {});
  }
}

/**
 * Calls `given` once werift has given the opener's `channel` its stream id,
 * which it does right before sending the DCEP OPEN, and makes those ids go
 * up.
 *
 * werift gives a new channel the lowest free id of its parity, so an id comes
 * back as soon as werift has reset its own direction of the stream, while
 * the peer's reset of the other direction may still be on its way, and then
 * closes the new channel. Here ids go up instead, and wrap around below the
 * number of streams the association has (1024 with libdatachannel), by when
 * the old resets are long done.
 */
function onIdGiven(channel: RTCDataChannel, given: () => void): void {
  // The peer's channels and negotiated ones do not come from the allocator.
  if (channel.negotiated || channel.isCreatedByRemote) return;
  const allocator = channel.sctp as unknown as SctpTransportInternals;
  const taken = (id: number) => {
    const sctp = channel.sctp.sctp as unknown as SctpAssociation;
    const next = id + 2;
    allocator.dataChannelId = next < sctp._outboundStreamsCount ? next : id % 2;
    given();
  };
  const setId = channel.setId.bind(channel);
  channel.setId = (id) => {
    setId(id);
    taken(id);
  };
  // On a live association werift gave the id (and sent the OPEN) inside
  // createDataChannel, before the hook above existed.
  if (channel.id !== undefined) taken(channel.id);
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
