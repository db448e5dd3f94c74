/**
 * A {@linkcode DataChannel} over a native `node-datachannel` channel.
 *
 * Internal to the libdatachannel backend; users only see the seam's
 * interface.
 *
 * @module
 */

import type {
  DataChannel,
  DataChannelInit,
  DataChannelState,
} from "../../core/backend.ts";
import { FrameTooLargeError, P2prtcError } from "../../core/errors.ts";
import { MAX_MESSAGE_SIZE } from "../../core/sdp.ts";
import type { NativeDataChannel } from "./native.ts";

const encoder = new TextEncoder();

/**
 * How long after our own `close()` the native `onClosed` may take before the
 * channel finishes without it. libdatachannel (0.24) marks the channel
 * closed and runs its closed callback at once, in whichever thread closes
 * first, and the thread that loses clears the callbacks: when the peer's
 * stream reset lands while we close, the callback can be cleared before it
 * runs, and `onClosed` never comes (about one channel in 1200 closed from
 * both ends a moment apart; the scale bench's 1000 streams met it). The
 * native channel is closed either way once `close()` has returned, so
 * nothing is cut short by finishing here.
 */
const CLOSE_CALLBACK_GRACE_MS = 250;

/** What a channel tells the peer connection that made or accepted it. */
export interface ChannelOwner {
  /** The channel delivered `onclose`; it is no longer an open handle. */
  channelClosed(channel: LibdatachannelDataChannel): void;
}

/** The text of a thrown value, for error messages. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * One data channel. Native events reach the handlers only while the native
 * channel they came from is still the current one (see
 * {@linkcode LibdatachannelDataChannel.rebind}) and `onclose` has not been
 * delivered.
 */
export class LibdatachannelDataChannel implements DataChannel {
  /** The channel became `open`. */
  onopen: (() => void) | null = null;
  /** One message arrived, as bytes. */
  onmessage: ((data: Uint8Array) => void) | null = null;
  /** `bufferedAmount` fell to the low threshold. */
  onbufferedamountlow: (() => void) | null = null;
  /** The channel is closed. */
  onclose: (() => void) | null = null;
  /** The stack reported an error; `onclose` follows. */
  onerror: ((error: Error) => void) | null = null;

  /** The label given when the channel was opened. */
  readonly label: string;
  /** How the channel was created, to create it again on a rebuild. */
  readonly init: DataChannelInit | undefined;

  #native: NativeDataChannel;
  #owner: ChannelOwner;
  #state: DataChannelState;
  #id: number | null = null;
  #threshold = 0;
  #closeFallback: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps `native`. An inbound channel is `open` from the start when the
   * stack says so; a created one starts `connecting`, as in the W3C API.
   */
  constructor(
    native: NativeDataChannel,
    label: string,
    init: DataChannelInit | undefined,
    owner: ChannelOwner,
    inbound: boolean,
  ) {
    this.label = label;
    this.init = init;
    this.#owner = owner;
    this.#native = native;
    this.#state = inbound && isOpen(native) ? "open" : "connecting";
    this.#bind(native);
    void this.id;
  }

  /** The SCTP stream id, once libdatachannel has assigned one. */
  get id(): number | null {
    if (this.#id === null && this.#state !== "closed") {
      try {
        // libdatachannel says 65535 (or -1) until the DTLS role is known.
        const id = this.#native.getId();
        if (id >= 0 && id < 65535) this.#id = id;
      } catch {
        // The native channel is already freed; the id was never assigned.
      }
    }
    return this.#id;
  }

  /** The current state. */
  get readyState(): DataChannelState {
    return this.#state;
  }

  /**
   * Bytes queued in libdatachannel above the SCTP stack. Bytes usrsctp has
   * accepted but not yet had acknowledged are not included.
   */
  get bufferedAmount(): number {
    if (this.#state === "closed") return 0;
    try {
      return this.#native.bufferedAmount();
    } catch {
      return 0;
    }
  }

  /** The threshold for `onbufferedamountlow`. */
  get bufferedAmountLowThreshold(): number {
    return this.#threshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    this.#threshold = Math.max(0, Math.floor(Number(value) || 0));
    if (this.#state === "closed") return;
    try {
      this.#native.setBufferedAmountLowThreshold(this.#threshold);
    } catch {
      // Freed natively: the channel is closing and the value no longer matters.
    }
  }

  /**
   * Queues one binary message. libdatachannel copies it before returning
   * (`sendMessageBinary` builds its own byte vector), so `data` may be
   * reused at once.
   */
  send(data: Uint8Array): void {
    if (this.#state !== "open") {
      throw new P2prtcError(
        "ERR_DATA_CHANNEL_NOT_OPEN",
        `cannot send on a data channel that is ${this.#state}`,
      );
    }
    try {
      this.#native.sendMessageBinary(data);
    } catch (error) {
      const message = messageOf(error);
      if (/size exceeds limit/i.test(message)) {
        throw new FrameTooLargeError(data.byteLength, this.#maxMessageSize());
      }
      throw new P2prtcError(
        "ERR_SEND_FAILED",
        `libdatachannel could not send ${data.byteLength} bytes: ${message}`,
        { cause: error },
      );
    }
  }

  /**
   * Closes the channel; `onclose` follows from libdatachannel, or after
   * {@linkcode CLOSE_CALLBACK_GRACE_MS} if its callback was lost. Idempotent.
   */
  close(): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    try {
      this.#native.close();
    } catch {
      // Already freed natively; the owner will deliver the close.
    }
    this.#closeFallback = setTimeout(
      () => this.finish(),
      CLOSE_CALLBACK_GRACE_MS,
    );
  }

  /**
   * Delivers `onclose` unless it was delivered already. The peer connection
   * calls it when its connection is gone, because libdatachannel does not
   * report the close of a channel whose connection never came up.
   */
  finish(): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#closeFallback);
    void this.id;
    this.#state = "closed";
    this.#owner.channelClosed(this);
    this.onclose?.();
  }

  /**
   * Moves this channel onto another native channel, after the peer
   * connection had to recreate its native connection before any of it was
   * negotiated. Events of the old native channel are ignored from now on.
   */
  rebind(native: NativeDataChannel): void {
    this.#bind(native);
  }

  #bind(native: NativeDataChannel): void {
    this.#native = native;
    const current = () => this.#native === native && this.#state !== "closed";
    native.onOpen(() => {
      if (!current() || this.#state !== "connecting") return;
      this.#state = "open";
      // Read now: once the native channel is freed the id is gone.
      void this.id;
      this.onopen?.();
    });
    native.onClosed(() => {
      if (this.#native === native) this.finish();
    });
    native.onError((message) => {
      if (!current()) return;
      this.onerror?.(new P2prtcError("ERR_DATA_CHANNEL", message));
      // The seam promises `onclose` after `onerror`; libdatachannel does
      // not always close on its own.
      this.close();
    });
    native.onBufferedAmountLow(() => {
      if (current()) this.onbufferedamountlow?.();
    });
    native.onMessage((message: string | Uint8Array | ArrayBuffer) => {
      if (current()) this.onmessage?.(toBytes(message));
    });
    if (this.#threshold > 0) {
      native.setBufferedAmountLowThreshold(this.#threshold);
    }
  }

  #maxMessageSize(): number {
    try {
      return this.#native.maxMessageSize();
    } catch {
      return MAX_MESSAGE_SIZE;
    }
  }
}

/** The native channel's own view of whether it is open. */
function isOpen(native: NativeDataChannel): boolean {
  try {
    return native.isOpen();
  } catch {
    return false;
  }
}

/**
 * A received message as a plain `Uint8Array`. node-datachannel hands over a
 * fresh Node `Buffer`; it is re-viewed, not copied, so that callers get
 * `Uint8Array` semantics (`slice` copies).
 */
function toBytes(message: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof message === "string") return encoder.encode(message);
  if (message instanceof ArrayBuffer) return new Uint8Array(message);
  return new Uint8Array(
    message.buffer,
    message.byteOffset,
    message.byteLength,
  );
}
