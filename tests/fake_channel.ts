/**
 * A deterministic in-process pair of data channels, for state-machine tests.
 *
 * Messages are delivered in order on a later microtask (never from inside
 * `send`), so a test controls exactly what the wire does: split messages into
 * pieces, join several into one, drop or hold back chosen frames, stall
 * `bufferedAmount`, or close both ends abruptly. No timers are used, so the
 * sanitizers see nothing and nothing depends on the clock.
 *
 * A test helper only; it is not shipped.
 */

import type { DataChannel, DataChannelState } from "../core/backend.ts";
import { prefixLength } from "../core/framing.ts";

/** What the wire does to one end's outgoing messages. */
export interface FakeLinkOptions {
  /** Deliver each message in pieces of at most this many bytes. */
  splitInto?: number;
  /** Deliver everything queued in one tick as a single message. */
  join?: boolean;
  /** Start both ends `connecting`; {@linkcode FakeDataChannel.open} opens them. */
  startConnecting?: boolean;
}

/** What to do with a frame picked by {@linkcode FakeDataChannel.intercept}. */
export type InterceptAction = "deliver" | "drop" | "hold";

/** One end of a fake data channel pair. */
export class FakeDataChannel implements DataChannel {
  readonly label: string = "";
  readonly id: number;
  bufferedAmountLowThreshold = 0;
  onopen: (() => void) | null = null;
  onmessage: ((data: Uint8Array) => void) | null = null;
  onbufferedamountlow: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: ((error: Error) => void) | null = null;

  /** Messages this end has sent, as they were sent (for assertions). */
  readonly sent: Uint8Array[] = [];
  /**
   * The bodies (without length prefix) of the frames this end has sent, in
   * order, whether a frame went out whole or as prefix and body.
   */
  readonly sentFrames: Uint8Array[] = [];

  /** How many times `close()` found the channel open or connecting. */
  closeCalls = 0;
  /**
   * Picks what happens to each frame this end sends, by its body (without
   * the length prefix). A frame sent as two messages, prefix then body, is
   * picked on its body, and the prefix follows the body's fate.
   */
  intercept: ((body: Uint8Array) => InterceptAction) | undefined;

  peer!: FakeDataChannel;
  #state: DataChannelState;
  #buffered = 0;
  #queue: Uint8Array[] = [];
  #held: Uint8Array[] = [];
  #prefixAlone = false;
  #stalled = false;
  #scheduled = false;
  readonly #options: FakeLinkOptions;

  /** Use {@linkcode createChannelPair}. */
  constructor(id: number, options: FakeLinkOptions) {
    this.id = id;
    this.#options = options;
    this.#state = options.startConnecting ? "connecting" : "open";
  }

  get readyState(): DataChannelState {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  send(data: Uint8Array): void {
    if (this.#state !== "open") {
      throw new DOMException(`channel is ${this.#state}`, "InvalidStateError");
    }
    const copy = data.slice();
    this.sent.push(copy);
    const split = this.#prefixAlone;
    // A frame goes out whole, or as its prefix alone and then its body.
    const prefix = split ? 0 : prefixLength(copy);
    this.#prefixAlone = !split && prefix === copy.length;
    const body = copy.subarray(prefix);
    if (!this.#prefixAlone) this.sentFrames.push(body);
    const action = this.#prefixAlone
      ? "deliver"
      : this.intercept?.(body) ?? "deliver";
    if (action !== "deliver") {
      // A prefix sent just before this body shares the body's fate.
      const parts = split ? [this.#queue.pop()!, copy] : [copy];
      if (split) this.#buffered -= parts[0].length;
      if (action === "hold") this.#held.push(...parts);
      return;
    }
    this.#buffered += copy.length;
    this.#queue.push(copy);
    this.#schedule();
  }

  close(): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.closeCalls++;
    this.#state = "closing";
    // An orderly close: what was sent before is delivered, then both close.
    this.#schedule();
  }

  /** Opens both ends of a pair made with `startConnecting`. */
  open(): void {
    for (const end of [this, this.peer]) {
      end.#state = "open";
      queueMicrotask(() => end.onopen?.());
    }
  }

  /** Holds every message sent from now on in `bufferedAmount`. */
  stall(): void {
    this.#stalled = true;
  }

  /** Lets stalled messages go. */
  unstall(): void {
    this.#stalled = false;
    this.#schedule();
  }

  /** Sends the frames held back by {@linkcode intercept}. */
  releaseHeld(): void {
    for (const message of this.#held) {
      this.#buffered += message.length;
      this.#queue.push(message);
    }
    this.#held = [];
    this.#schedule();
  }

  /** Both ends close at once, losing anything in flight, as a crash would. */
  abruptClose(): void {
    for (const end of [this, this.peer]) {
      end.#queue = [];
      end.#buffered = 0;
      end.#setClosed();
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#state === "closed") return;
    if (!this.#stalled && this.#queue.length > 0) {
      const queue = this.#queue;
      this.#queue = [];
      const before = this.#buffered;
      this.#buffered = 0;
      for (const message of this.#options.join ? [concat(queue)] : queue) {
        this.peer.#receive(message);
      }
      if (
        before > this.bufferedAmountLowThreshold &&
        this.bufferedAmountLowThreshold >= 0
      ) {
        this.onbufferedamountlow?.();
      }
    }
    if (this.#state === "closing" && this.#queue.length === 0) {
      this.#setClosed();
      this.peer.#setClosed();
    }
  }

  #receive(message: Uint8Array): void {
    if (this.#state === "closed") return;
    const piece = this.#options.splitInto ?? message.length;
    for (let offset = 0; offset < message.length; offset += piece) {
      this.onmessage?.(message.subarray(offset, offset + piece));
    }
  }

  #setClosed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    queueMicrotask(() => this.onclose?.());
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Makes two connected fake channels. */
export function createChannelPair(
  options: FakeLinkOptions = {},
): [FakeDataChannel, FakeDataChannel] {
  const a = new FakeDataChannel(2, options);
  const b = new FakeDataChannel(2, options);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
