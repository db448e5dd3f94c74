/**
 * Messages with an unsigned varint length in front, read off a byte stream:
 * the framing libp2p protocols put around their protobufs (js-libp2p's
 * `lpStream`, go-msgio's `pbio`), such as `/webrtc-signaling/0.0.1`.
 *
 * The decoder is pulled one message at a time, so a chunk holding many
 * messages costs no queue, and what it keeps is bounded by the message limit:
 * a prefix announcing more is refused as soon as it ends, before any of the
 * body is buffered.
 *
 * @example One message split over two chunks
 * ```ts
 * import { encodeLengthPrefixed, LengthPrefixedDecoder } from "./length_prefixed.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const bytes = encodeLengthPrefixed(new Uint8Array([1, 2, 3]));
 * deepStrictEqual(bytes, new Uint8Array([3, 1, 2, 3]));
 *
 * const decoder = new LengthPrefixedDecoder({
 *   maxLength: 1024,
 *   tooLarge: (size, limit) => new RangeError(`${size} > ${limit}`),
 * });
 * decoder.push(bytes.subarray(0, 2));
 * strictEqual(decoder.next(), undefined); // more bytes needed
 * decoder.push(bytes.subarray(2));
 * deepStrictEqual(decoder.next(), new Uint8Array([1, 2, 3]));
 * strictEqual(decoder.atBoundary, true);
 * ```
 *
 * @module
 */

import { varintLength, writeVarint } from "./framing.ts";

/** `body` with its length, as an unsigned varint, in front. */
export function encodeLengthPrefixed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(varintLength(body.length) + body.length);
  out.set(body, writeVarint(out, 0, body.length));
  return out;
}

/** Options for {@linkcode LengthPrefixedDecoder}. */
export interface LengthPrefixedDecoderOptions {
  /** The largest body accepted, in bytes, not counting the prefix. */
  maxLength: number;
  /**
   * Makes the error thrown for a body over `maxLength`, so each protocol
   * keeps its own error type. `size` is `Infinity` when the prefix itself
   * ran longer than any length under the limit needs.
   */
  tooLarge: (size: number, limit: number) => Error;
}

/**
 * Reads length-prefixed messages from chunks of a byte stream: a message may
 * be split over chunks, and a chunk may hold several messages.
 *
 * Use it as a pull loop: call {@linkcode LengthPrefixedDecoder.next} until it
 * returns `undefined`, then {@linkcode LengthPrefixedDecoder.push} the next
 * chunk. After `next` has thrown, the stream is out of sync and the decoder
 * must not be used again.
 */
export class LengthPrefixedDecoder {
  /** The largest body accepted, in bytes. */
  readonly maxLength: number;
  readonly #tooLarge: (size: number, limit: number) => Error;
  readonly #maxPrefix: number;
  #chunk: Uint8Array | undefined;
  #offset = 0;
  // The prefix so far: it may end in a later chunk than it starts in.
  #length = 0;
  #scale = 1;
  #prefixBytes = 0;
  // A body split over chunks, filled up to #filled. Allocated once its
  // length is known, so it never exceeds the limit.
  #body: Uint8Array | undefined;
  #filled = 0;

  /** Makes a decoder; see {@linkcode LengthPrefixedDecoderOptions}. */
  constructor(options: LengthPrefixedDecoderOptions) {
    if (!(Number.isSafeInteger(options.maxLength) && options.maxLength >= 0)) {
      throw new TypeError(
        `invalid maxLength ${options.maxLength}: it must be an integer, 0 or more`,
      );
    }
    this.maxLength = options.maxLength;
    this.#tooLarge = options.tooLarge;
    this.#maxPrefix = varintLength(options.maxLength);
  }

  /**
   * Whether the decoder stands between two messages: no part of one is held.
   * A stream that ends anywhere else ended inside a message.
   */
  get atBoundary(): boolean {
    return this.#prefixBytes === 0 && this.#body === undefined &&
      this.#remaining() === 0;
  }

  /** Bytes held of a message not yet complete. */
  get bufferedBytes(): number {
    return this.#prefixBytes + this.#filled;
  }

  /**
   * Hands the decoder the stream's next chunk. The chunk is read in place,
   * not copied, until `next` has consumed it.
   *
   * @throws {TypeError} if the previous chunk is not consumed yet.
   */
  push(chunk: Uint8Array): void {
    if (this.#remaining() > 0) {
      throw new TypeError("push() before next() consumed the previous chunk");
    }
    this.#chunk = chunk;
    this.#offset = 0;
  }

  /**
   * The next complete message body, or `undefined` if more bytes are
   * needed. A body that lay whole in one chunk is a view into it.
   *
   * @throws whatever `tooLarge` makes, for a prefix over the limit.
   */
  next(): Uint8Array | undefined {
    const chunk = this.#chunk;
    if (chunk === undefined) return undefined;
    while (this.#offset < chunk.length) {
      if (this.#body !== undefined) {
        const body = this.#body;
        const take = Math.min(
          body.length - this.#filled,
          chunk.length - this.#offset,
        );
        body.set(
          chunk.subarray(this.#offset, this.#offset + take),
          this.#filled,
        );
        this.#filled += take;
        this.#offset += take;
        if (this.#filled < body.length) break;
        this.#body = undefined;
        this.#filled = 0;
        return body;
      }
      const byte = chunk[this.#offset++];
      this.#length += (byte & 0x7f) * this.#scale;
      this.#prefixBytes++;
      if (byte & 0x80) {
        if (this.#prefixBytes >= this.#maxPrefix) {
          throw this.#tooLarge(Infinity, this.maxLength);
        }
        this.#scale *= 0x80;
        continue;
      }
      const length = this.#length;
      if (length > this.maxLength) throw this.#tooLarge(length, this.maxLength);
      this.#length = 0;
      this.#scale = 1;
      this.#prefixBytes = 0;
      if (chunk.length - this.#offset >= length) {
        this.#offset += length;
        return chunk.subarray(this.#offset - length, this.#offset);
      }
      this.#body = new Uint8Array(length);
    }
    this.#chunk = undefined;
    return undefined;
  }

  #remaining(): number {
    return this.#chunk === undefined ? 0 : this.#chunk.length - this.#offset;
  }
}
