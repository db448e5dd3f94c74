/**
 * multistream-select 1.0.0 on one stream: the opener proposes protocols
 * ({@linkcode select}, or {@linkcode selectLazy} without waiting for the
 * answer), the answerer accepts one ({@linkcode handle}).
 *
 * Each message is an unsigned varint length, counting the trailing newline,
 * then UTF-8 text ending in `"\n"`. Both sides open with the header
 * `/multistream/1.0.0`; the opener then proposes protocol ids one at a time,
 * and the answerer echoes the one it speaks or answers `na`.
 *
 * Negotiation reads the stream through a BYOB reader, one exact message at a
 * time, so it never takes a byte past its last message: whatever a lazy peer
 * sent after its proposal, even in the same frame, is still queued in the
 * stream's readable for the application. So after {@linkcode select} and
 * {@linkcode handle}, {@linkcode NegotiatedStream.readable} is the stream's
 * own readable, with no wrapper in the data path.
 *
 * Every negotiation is bounded: by `options.signal` and by a time limit
 * (default 10 s, {@linkcode TimeoutError}). When negotiation fails, the stream
 * is reset: with `PROTOCOL_NEGOTIATION_FAILED` when no protocol was agreed,
 * `PROTOCOL_VIOLATION` when the peer sent garbage, and no code on abort or
 * timeout.
 *
 * @example The bytes an opener sends first
 * ```ts
 * import { encodeMessage, PROTOCOL_ID } from "./multistream.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const header = encodeMessage(PROTOCOL_ID);
 * deepStrictEqual(header[0], 0x13); // 18 characters and the newline
 * deepStrictEqual(
 *   new TextDecoder().decode(header.subarray(1)),
 *   "/multistream/1.0.0\n",
 * );
 * deepStrictEqual(encodeMessage("na"), new Uint8Array([3, 0x6e, 0x61, 0x0a]));
 * ```
 *
 * @example Negotiating on both ends of a stream
 * ```ts ignore
 * // The opener, on a stream it has just opened:
 * await using echo = await select(stream, ["/echo/2.0.0", "/echo/1.0.0"]);
 * console.log(echo.protocol); // whichever the peer accepted first
 * const writer = echo.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 *
 * // The answerer, on a stream the peer opened:
 * const inbound = await handle(peerStream, ["/echo/1.0.0"]);
 * await inbound.readable.pipeTo(inbound.writable); // the data right after
 * // the proposal, even from a lazy peer, is the first thing read here
 * ```
 *
 * @module
 */

import {
  InvalidMultistreamMessageError,
  MultistreamMessageTooLargeError,
  ProtocolNegotiationError,
  StreamClosedError,
  StreamErrorCode,
  TimeoutError,
} from "./errors.ts";
import { varintLength, writeVarint } from "./framing.ts";
import type { CloseOptions } from "./stream.ts";

export type { CloseOptions };

/** The multistream-select header, without its newline. */
export const PROTOCOL_ID = "/multistream/1.0.0";

/**
 * The default limit on one incoming message, newline included, in bytes:
 * protocol ids are at most 1024 bytes by the spec, and go and js refuse
 * messages over 1024 bytes.
 */
export const MAX_MESSAGE_SIZE = 1024;

/** The default time limit on one negotiation, in milliseconds. */
export const DEFAULT_NEGOTIATION_TIMEOUT = 10_000;

const NA = "na";
const LS = "ls";
const NEWLINE = 0x0a;
/** How many refused protocols an error lists, so a chatty peer costs nothing. */
const MAX_REFUSED_LISTED = 32;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * What negotiation needs from a stream; `WebRTCStream` has all of it.
 * `readable` must be a byte stream (`type: "bytes"`), so negotiation can read
 * exactly its own bytes and no more.
 */
export interface NegotiableStream {
  /** The bytes the peer sent; a byte stream. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to send to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves once the stream is fully closed. */
  readonly closed: Promise<void>;
  /** Half-closes for writing (FIN), as `WebRTCStream.closeWrite` does. */
  closeWrite(options?: CloseOptions): Promise<void>;
  /** Half-closes for reading (STOP_SENDING). */
  closeRead(): void;
  /** Aborts both halves, with `errorCode` when given. */
  reset(errorCode?: number): void;
}

/** Options for {@linkcode select}, {@linkcode selectLazy} and {@linkcode handle}. */
export interface MultistreamOptions {
  /**
   * Gives up the negotiation: the stream is reset and the call rejects with
   * the signal's reason.
   */
  signal?: AbortSignal;
  /**
   * The time limit on the whole negotiation, in milliseconds; past it the
   * stream is reset and the call rejects with {@linkcode TimeoutError}.
   * Default {@linkcode DEFAULT_NEGOTIATION_TIMEOUT}. `Infinity` for none,
   * which leaves `signal` as the only bound.
   */
  timeout?: number;
  /**
   * The largest message accepted from the peer, newline included, in bytes.
   * Default {@linkcode MAX_MESSAGE_SIZE}.
   */
  maxMessageSize?: number;
}

/**
 * The protocols an answerer speaks: a list (which also answers `ls`), or a
 * test on each proposed id (`ls` is then answered `na`).
 */
export type SupportedProtocols = readonly string[] | ((id: string) => boolean);

/**
 * Encodes one multistream-select message: the varint length of `text` plus
 * its newline, then the UTF-8 text, then `"\n"`.
 */
export function encodeMessage(text: string): Uint8Array {
  return delimit(encoder.encode(text));
}

/**
 * Negotiates a protocol as the opener (dialer): sends the header and the
 * first proposal together, then waits for each answer and proposes the next
 * protocol after every `na`.
 *
 * @returns the stream with the protocol the peer accepted; its readable and
 * writable are the stream's own, unlocked.
 * @throws {ProtocolNegotiationError} if the peer refuses every protocol or
 * ends the stream first; the stream is reset with
 * `PROTOCOL_NEGOTIATION_FAILED`.
 * @throws {InvalidMultistreamMessageError} or
 * {@linkcode MultistreamMessageTooLargeError} if the peer sends garbage; the
 * stream is reset with `PROTOCOL_VIOLATION`.
 * @throws {TimeoutError} past the time limit, or the signal's reason on
 * abort; the stream is reset.
 * @throws {TypeError} for an empty list or an invalid protocol id, before
 * anything is sent.
 */
export async function select(
  stream: NegotiableStream,
  protocols: readonly string[],
  options: MultistreamOptions = {},
): Promise<NegotiatedStream> {
  checkProtocols(protocols);
  checkOptions(options);
  const { reader, writer } = lock(stream, options);
  try {
    const protocol = await guard(stream, options, async () => {
      await writer.write(concat([PROTOCOL_ID, protocols[0]]));
      await expectHeader(reader, "answering");
      for (let i = 0; i < protocols.length; i++) {
        if (i > 0) await writer.write(encodeMessage(protocols[i]));
        if (await readAnswer(reader, protocols[i], protocols.slice(0, i))) {
          return protocols[i];
        }
      }
      throw new ProtocolNegotiationError(
        `the peer supports none of ${protocols.join(", ")}`,
        protocols.slice(0, MAX_REFUSED_LISTED),
      );
    });
    return new NegotiatedStream(stream, protocol);
  } finally {
    reader.release();
    writer.releaseLock();
  }
}

/**
 * Negotiates one protocol optimistically, as the opener: the header and the
 * proposal are queued at once, and the application may write straight after
 * them without waiting for the peer's answer. The answer is read in the
 * background and checked before the application's first read gets any byte.
 *
 * Use it only when the peer is known to speak `protocol`: if it refuses,
 * what was written meanwhile is lost (the peer reads it as more proposals),
 * {@linkcode NegotiatedStream.confirmed} and the readable reject with
 * {@linkcode ProtocolNegotiationError}, and the stream is reset with
 * `PROTOCOL_NEGOTIATION_FAILED`. The time limit in `options` bounds the wait
 * for the answer, whether or not the application reads.
 *
 * @throws {TypeError} for an invalid protocol id, or a stream whose readable
 * or writable is locked or whose readable is not a byte stream.
 */
export function selectLazy(
  stream: NegotiableStream,
  protocol: string,
  options: MultistreamOptions = {},
): NegotiatedStream {
  checkProtocols([protocol]);
  checkOptions(options);
  const { reader, writer } = lock(stream, options);
  // Queued before the application can write: released with the write still
  // pending, it keeps its place ahead of every later write.
  const sent = writer.write(concat([PROTOCOL_ID, protocol]));
  writer.releaseLock();
  // A failed write resets the stream; the negotiation below reports it.
  sent.catch(() => {});
  const confirmed = guard(stream, options, async () => {
    await sent;
    await expectHeader(reader, "answering");
    if (!(await readAnswer(reader, protocol, []))) {
      throw new ProtocolNegotiationError(
        `the peer does not support ${protocol}`,
        [protocol],
      );
    }
  }).finally(() => reader.release());
  return new NegotiatedStream(stream, protocol, confirmed);
}

/**
 * Negotiates a protocol as the answerer (listener): reads the peer's header,
 * answers with ours, then answers each proposal with `na` until one is
 * supported, which it echoes; `ls` is answered with the list of protocols
 * (or `na` when `protocols` is a function).
 *
 * Nothing after the accepted proposal is consumed, so data a lazy peer sent
 * right behind it is the first thing the application reads.
 *
 * @returns the stream with the protocol accepted; its readable and writable
 * are the stream's own, unlocked.
 * @throws {ProtocolNegotiationError} if the peer ends the stream before
 * proposing a supported protocol; the stream is reset with
 * `PROTOCOL_NEGOTIATION_FAILED`.
 * @throws {StreamResetError} if the peer gives up and resets the stream.
 * @throws {InvalidMultistreamMessageError} or
 * {@linkcode MultistreamMessageTooLargeError} if the peer sends garbage; the
 * stream is reset with `PROTOCOL_VIOLATION`.
 * @throws {TimeoutError} past the time limit, or the signal's reason on
 * abort; the stream is reset.
 * @throws {TypeError} for an empty list or an invalid protocol id.
 */
export async function handle(
  stream: NegotiableStream,
  protocols: SupportedProtocols,
  options: MultistreamOptions = {},
): Promise<NegotiatedStream> {
  if (typeof protocols !== "function") checkProtocols(protocols);
  checkOptions(options);
  const supports = typeof protocols === "function"
    ? protocols
    : (id: string) => protocols.includes(id);
  const { reader, writer } = lock(stream, options);
  try {
    const protocol = await guard(stream, options, async () => {
      const refused: string[] = [];
      await expectHeader(reader, "opening");
      await writer.write(encodeMessage(PROTOCOL_ID));
      while (true) {
        const proposal = await reader.read();
        if (proposal === null) {
          throw new ProtocolNegotiationError(
            "the peer ended the stream before proposing a supported protocol",
            refused,
          );
        }
        if (proposal === LS && typeof protocols !== "function") {
          await writer.write(listing(protocols));
        } else if (proposal !== LS && proposal !== NA && supports(proposal)) {
          await writer.write(encodeMessage(proposal));
          return proposal;
        } else {
          if (refused.length < MAX_REFUSED_LISTED) refused.push(proposal);
          await writer.write(encodeMessage(NA));
        }
      }
    });
    return new NegotiatedStream(stream, protocol);
  } finally {
    reader.release();
    writer.releaseLock();
  }
}

/**
 * A stream after negotiation: the protocol agreed, and the stream's halves.
 * Made by {@linkcode select}, {@linkcode selectLazy} and {@linkcode handle}.
 *
 * After a full negotiation, `readable` and `writable` are the underlying
 * stream's own. After {@linkcode selectLazy}, `readable` is a byte stream
 * that waits for the peer's answer before it yields the stream's bytes.
 */
export class NegotiatedStream implements AsyncDisposable {
  /** The protocol agreed on. */
  readonly protocol: string;
  /** The underlying stream. */
  readonly stream: NegotiableStream;
  /** The bytes the peer sent after negotiation. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to send to the peer under {@linkcode NegotiatedStream.protocol}. */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Resolves once the peer has accepted the protocol: already resolved after
   * {@linkcode select} and {@linkcode handle}; after {@linkcode selectLazy},
   * when the answer arrives, or rejects as that negotiation fails.
   */
  readonly confirmed: Promise<void>;

  #settled: boolean;
  #readClosed = false;
  #lazyController: ReadableByteStreamController | undefined;

  /**
   * Wraps `stream` negotiated for `protocol`. `confirmed`, when given, is a
   * negotiation still under way, which reads must wait for.
   */
  constructor(
    stream: NegotiableStream,
    protocol: string,
    confirmed?: Promise<void>,
  ) {
    this.stream = stream;
    this.protocol = protocol;
    this.writable = stream.writable;
    this.#settled = confirmed === undefined;
    this.confirmed = confirmed ?? Promise.resolve();
    // Whoever never looks at `confirmed` still hears of a failure through
    // the readable or the reset stream; an unobserved rejection is no bug.
    this.confirmed.then(() => this.#settled = true, () => {
      this.#settled = true;
    });
    this.readable = confirmed === undefined
      ? stream.readable
      : this.#lazyReadable();
  }

  /** Resolves once the stream is fully closed. Never rejects. */
  get closed(): Promise<void> {
    return this.stream.closed;
  }

  /** Half-closes for writing: FIN after every write queued, then FIN_ACK. */
  closeWrite(options?: CloseOptions): Promise<void> {
    return this.stream.closeWrite(options);
  }

  /**
   * Half-closes for reading (STOP_SENDING). After {@linkcode selectLazy},
   * STOP_SENDING waits for the peer's answer, which must still be read.
   */
  closeRead(): void {
    if (this.#readClosed) return;
    this.#readClosed = true;
    // A no-op once the readable was cancelled, which may be how we got here.
    this.#lazyController?.error(new StreamClosedError("read side closed"));
    if (this.#settled) this.stream.closeRead();
    else {
      const close = () => this.stream.closeRead();
      this.confirmed.then(close, close);
    }
  }

  /** Closes both halves gracefully: closeRead, then closeWrite. */
  async close(options?: CloseOptions): Promise<void> {
    this.closeRead();
    await this.closeWrite(options);
  }

  /** Aborts both halves, with `errorCode` when given. */
  reset(errorCode?: number): void {
    this.stream.reset(errorCode);
  }

  /** Closes gracefully, or resets if that fails. Never throws. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      this.reset();
    }
  }

  /** The readable for a lazy negotiation: the answer gates the first byte. */
  #lazyReadable(): ReadableStream<Uint8Array> {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    return new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#lazyController = controller;
      },
      pull: async (controller) => {
        if (reader === undefined) {
          await this.confirmed;
          if (this.#readClosed) return;
          reader = this.stream.readable.getReader();
        }
        while (true) {
          const { value, done } = await reader.read();
          if (this.#readClosed) return;
          if (done) {
            controller.close();
            // A BYOB read waiting at the end must be answered with 0 bytes.
            controller.byobRequest?.respond(0);
            return;
          }
          // The chunk is ours, so handing its buffer on costs no copy.
          if (value.byteLength > 0) return controller.enqueue(value);
        }
      },
      cancel: () => this.closeRead(),
      // Pull only when read: the underlying stream's buffer is the one bound.
    }, { highWaterMark: 0 });
  }
}

/**
 * Takes both locks negotiation needs, or neither: a stream that cannot be
 * negotiated on throws before anything is sent.
 */
function lock(
  stream: NegotiableStream,
  options: MultistreamOptions,
): { reader: MessageReader; writer: WritableStreamDefaultWriter<Uint8Array> } {
  const reader = new MessageReader(stream.readable, options.maxMessageSize);
  try {
    return { reader, writer: stream.writable.getWriter() };
  } catch (error) {
    reader.release();
    throw error;
  }
}

/**
 * Runs one negotiation under its signal and time limit. Aborting resets the
 * stream, which wakes any read or write in progress; failures reset it with
 * the code that fits.
 */
async function guard<T>(
  stream: NegotiableStream,
  options: MultistreamOptions,
  negotiate: () => Promise<T>,
): Promise<T> {
  const { signal } = options;
  const timeout = options.timeout ?? DEFAULT_NEGOTIATION_TIMEOUT;
  if (signal?.aborted) {
    stream.reset();
    throw signal.reason;
  }
  let aborted = false;
  let reason: unknown;
  // Settles only by rejecting, when the negotiation is given up.
  const stop = Promise.withResolvers<never>();
  stop.promise.catch(() => {});
  const abort = (why: unknown) => {
    if (aborted) return;
    aborted = true;
    reason = why;
    // The reset wakes a read or write in progress on a WebRTCStream; the race
    // below stops waiting even on a stream whose reset does not.
    stream.reset();
    stop.reject(why);
  };
  const onAbort = () => abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const timer = Number.isFinite(timeout)
    ? setTimeout(
      () =>
        abort(
          new TimeoutError(
            `multistream-select did not finish within ${timeout} ms`,
          ),
        ),
      timeout,
    )
    : undefined;
  const running = negotiate();
  // Once given up, its own failure is expected and uninteresting.
  running.catch(() => {});
  try {
    const result = await Promise.race([running, stop.promise]);
    if (aborted) throw reason;
    return result;
  } catch (error) {
    if (aborted) throw reason;
    stream.reset(resetCode(error));
    throw error;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

function resetCode(error: unknown): number | undefined {
  if (error instanceof ProtocolNegotiationError) {
    return StreamErrorCode.PROTOCOL_NEGOTIATION_FAILED;
  }
  if (
    error instanceof InvalidMultistreamMessageError ||
    error instanceof MultistreamMessageTooLargeError
  ) {
    return StreamErrorCode.PROTOCOL_VIOLATION;
  }
  return undefined;
}

/**
 * Reads messages one at a time through a BYOB reader, asking for exactly the
 * bytes each needs, so nothing after the last message is taken off the stream.
 */
class MessageReader {
  readonly #reader: ReadableStreamBYOBReader;
  readonly #limit: number;
  readonly #maxPrefix: number;
  /** Handed to each read and handed back by it (BYOB reads transfer it). */
  #buffer: ArrayBuffer;

  constructor(readable: ReadableStream<Uint8Array>, limit = MAX_MESSAGE_SIZE) {
    try {
      this.#reader = readable.getReader({ mode: "byob" });
    } catch (error) {
      throw new TypeError(
        "multistream-select needs an unlocked byte stream to read from",
        { cause: error },
      );
    }
    this.#limit = limit;
    this.#maxPrefix = varintLength(limit);
    this.#buffer = new ArrayBuffer(64);
  }

  /**
   * Reads one message and returns its text without the newline, or `null`
   * if the stream ended cleanly before it.
   */
  async read(): Promise<string | null> {
    let length = 0;
    let scale = 1;
    for (let i = 0;; i++) {
      // Byte by byte: a varint's length is known only once it ends.
      const byte = await this.#fill(1, i === 0);
      if (byte === null) return null;
      length += (byte[0] & 0x7f) * scale;
      if ((byte[0] & 0x80) === 0) break;
      if (i + 1 >= this.#maxPrefix) {
        throw new MultistreamMessageTooLargeError(Infinity, this.#limit);
      }
      scale *= 0x80;
    }
    if (length > this.#limit) {
      throw new MultistreamMessageTooLargeError(length, this.#limit);
    }
    if (length === 0) {
      throw new InvalidMultistreamMessageError("empty multistream message");
    }
    const body = (await this.#fill(length, false))!;
    if (body[length - 1] !== NEWLINE) {
      throw new InvalidMultistreamMessageError(
        "multistream message without its trailing newline",
      );
    }
    try {
      return decoder.decode(body.subarray(0, length - 1));
    } catch {
      throw new InvalidMultistreamMessageError(
        "multistream message is not UTF-8",
      );
    }
  }

  /** Gives the stream back, for the application or a later reader. */
  release(): void {
    this.#reader.releaseLock();
  }

  /**
   * Reads exactly `n` bytes into the start of the buffer. At the end of the
   * stream, returns `null` if `atBoundary` and nothing was read yet, or
   * throws: a message cut short is not a clean end.
   */
  async #fill(n: number, atBoundary: boolean): Promise<Uint8Array | null> {
    // Grown to the largest message seen, never to the limit up front.
    if (this.#buffer.byteLength < n) this.#buffer = new ArrayBuffer(n);
    let offset = 0;
    while (offset < n) {
      const { value, done } = await this.#reader.read(
        new Uint8Array(this.#buffer, offset, n - offset),
      );
      if (value !== undefined) this.#buffer = value.buffer as ArrayBuffer;
      if (done) {
        if (atBoundary && offset === 0) return null;
        throw new InvalidMultistreamMessageError(
          "the stream ended inside a multistream message",
        );
      }
      offset += value.byteLength;
    }
    return new Uint8Array(this.#buffer, 0, n);
  }
}

/** Reads the peer's header; anything else, or the end, is an error. */
async function expectHeader(
  reader: MessageReader,
  role: "opening" | "answering",
): Promise<void> {
  const header = await reader.read();
  if (header === null) {
    throw new ProtocolNegotiationError(
      `the ${role} peer ended the stream before the multistream header`,
    );
  }
  if (header !== PROTOCOL_ID) {
    throw new InvalidMultistreamMessageError(
      `expected the header ${PROTOCOL_ID}, got ${quote(header)}`,
    );
  }
}

/**
 * Reads the answer to `proposal`: `true` for its echo, `false` for `na`.
 * `refused` are the protocols refused before it, for the error if the stream
 * ends here.
 */
async function readAnswer(
  reader: MessageReader,
  proposal: string,
  refused: readonly string[],
): Promise<boolean> {
  const answer = await reader.read();
  if (answer === null) {
    throw new ProtocolNegotiationError(
      `the peer ended the stream without answering ${proposal}`,
      refused,
    );
  }
  if (answer === proposal) return true;
  if (answer === NA) return false;
  throw new InvalidMultistreamMessageError(
    `expected ${proposal} or na, got ${quote(answer)}`,
  );
}

/** Rejects options that would leave a negotiation unbounded. */
function checkOptions(options: MultistreamOptions): void {
  const { timeout, maxMessageSize } = options;
  if (timeout !== undefined && !(timeout >= 0)) {
    throw new TypeError(`invalid timeout ${timeout}: it must be 0 or more`);
  }
  if (
    maxMessageSize !== undefined &&
    !(Number.isSafeInteger(maxMessageSize) && maxMessageSize > 0)
  ) {
    throw new TypeError(
      `invalid maxMessageSize ${maxMessageSize}: it must be a positive integer`,
    );
  }
}

/** Rejects ids that cannot go on the wire, before anything is sent. */
function checkProtocols(protocols: readonly string[]): void {
  if (protocols.length === 0) {
    throw new TypeError("multistream-select needs at least one protocol");
  }
  for (const id of protocols) {
    if (
      typeof id !== "string" || id.length === 0 || id.includes("\n") ||
      encoder.encode(id).length + 1 > MAX_MESSAGE_SIZE
    ) {
      throw new TypeError(
        `invalid protocol id ${quote(String(id))}: it must be 1 to ${
          MAX_MESSAGE_SIZE - 1
        } bytes of UTF-8 without a newline`,
      );
    }
  }
}

/**
 * The answer to `ls`: one message whose text is each protocol as a message
 * of its own, then the closing newline, as go and js send it.
 */
function listing(protocols: readonly string[]): Uint8Array {
  const entries = protocols.map(encodeMessage);
  const body = new Uint8Array(entries.reduce((n, e) => n + e.length, 0));
  let offset = 0;
  for (const entry of entries) {
    body.set(entry, offset);
    offset += entry.length;
  }
  return delimit(body);
}

/** Several messages in one buffer, so they go out in one frame. */
function concat(texts: readonly string[]): Uint8Array {
  const messages = texts.map(encodeMessage);
  const out = new Uint8Array(messages.reduce((n, m) => n + m.length, 0));
  let offset = 0;
  for (const message of messages) {
    out.set(message, offset);
    offset += message.length;
  }
  return out;
}

/** `body` with its varint length (newline counted) before it and `\n` after. */
function delimit(body: Uint8Array): Uint8Array {
  const length = body.length + 1;
  const out = new Uint8Array(varintLength(length) + length);
  out.set(body, writeVarint(out, 0, length));
  out[out.length - 1] = NEWLINE;
  return out;
}

/** A peer's text, shortened and quoted, for an error message. */
function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
