/**
 * The libp2p WebRTC data-channel framing: each frame is an unsigned varint
 * length followed by a protobuf `Message { flag = 1; message = 2;
 * errorCode = 3 }` (see `proto/message.proto`).
 *
 * The codec is written out here rather than taken from the protons-generated
 * `proto/message.ts`, for two reasons. The generated decoder throws on a flag
 * value it does not know, and the spec's implementations ignore unknown flags.
 * And this is the data path: encoding writes into a caller's buffer and
 * decoding hands out views, so a frame costs no allocation beyond the frame
 * object. `tests/framing_test.ts` checks both directions against the
 * generated codec.
 *
 * @example Encode a frame and decode it again
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./framing.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const bytes = encodeFrame({ message: new TextEncoder().encode("hi") });
 * deepStrictEqual(bytes, new Uint8Array([0x04, 0x12, 0x02, 0x68, 0x69]));
 *
 * const decoder = new FrameDecoder();
 * decoder.push(bytes, (frame) => {
 *   deepStrictEqual(new TextDecoder().decode(frame.message), "hi");
 * });
 * ```
 *
 * @module
 */

import { FrameTooLargeError, MalformedFrameError } from "./errors.ts";

/** The flags of the libp2p WebRTC stream state machine. */
export const Flag = {
  /** The sender has finished writing. */
  FIN: 0,
  /** The sender discards anything more it receives. */
  STOP_SENDING: 1,
  /** The sender aborts the stream, both halves. */
  RESET: 2,
  /** The sender has received everything up to and including the FIN. */
  FIN_ACK: 3,
} as const;

/** One of the values of {@linkcode Flag}. */
export type Flag = typeof Flag[keyof typeof Flag];

/**
 * The most bytes one frame may take on the wire, varint prefix included
 * (libp2p/specs webrtc/README.md).
 */
export const MAX_FRAME_SIZE = 16384;

/**
 * The most payload bytes one data frame carries: {@linkcode MAX_FRAME_SIZE}
 * less 2 bytes of prefix and 5 of protobuf overhead, as go, js and rust use.
 */
export const MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - 7;

/** One decoded frame. A field is `undefined` when the frame lacks it. */
export interface Frame {
  /**
   * The flag, a {@linkcode Flag} value or one this version does not know
   * (which receivers ignore).
   */
  flag?: number;
  /** Application bytes. */
  message?: Uint8Array;
  /** The error code sent with RESET or STOP_SENDING (draft spec). */
  errorCode?: number;
}

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * The largest frame accepted, prefix included. Default
   * {@linkcode MAX_FRAME_SIZE}.
   */
  maxFrameSize?: number;
}

const TAG_FLAG = 0x08; // field 1, varint
const TAG_MESSAGE = 0x12; // field 2, length-delimited
const TAG_ERROR_CODE = 0x18; // field 3, varint

/** How many bytes the unsigned varint encoding of `value` takes. */
export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/**
 * Writes `value` as an unsigned varint into `target` at `offset`; returns the
 * offset after it.
 */
export function writeVarint(
  target: Uint8Array,
  offset: number,
  value: number,
): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}

/**
 * Encodes one frame, prefix included. With `target`, the frame is written at
 * its start and a view of it is returned; otherwise a new array is made.
 *
 * @throws {FrameTooLargeError} if the frame would exceed
 * {@linkcode MAX_FRAME_SIZE}: callers split payloads at
 * {@linkcode MAX_PAYLOAD_SIZE}.
 */
export function encodeFrame(frame: Frame, target?: Uint8Array): Uint8Array {
  const { flag, message, errorCode } = frame;
  let bodyLength = 0;
  if (flag !== undefined) bodyLength += 1 + varintLength(flag);
  if (message !== undefined) {
    bodyLength += 1 + varintLength(message.length) + message.length;
  }
  if (errorCode !== undefined) bodyLength += 1 + varintLength(errorCode);
  const size = varintLength(bodyLength) + bodyLength;
  if (size > MAX_FRAME_SIZE) throw new FrameTooLargeError(size, MAX_FRAME_SIZE);

  const out = target === undefined ? new Uint8Array(size) : target;
  let offset = writeVarint(out, 0, bodyLength);
  // Explicit presence: FIN is 0 and must still be written (`08 00`).
  if (flag !== undefined) {
    out[offset++] = TAG_FLAG;
    offset = writeVarint(out, offset, flag);
  }
  if (message !== undefined) {
    out[offset++] = TAG_MESSAGE;
    offset = writeVarint(out, offset, message.length);
    out.set(message, offset);
    offset += message.length;
  }
  if (errorCode !== undefined) {
    out[offset++] = TAG_ERROR_CODE;
    offset = writeVarint(out, offset, errorCode);
  }
  return target === undefined ? out : out.subarray(0, size);
}

/**
 * The length of the varint prefix at the start of an encoded frame, so that a
 * sender can send prefix and body as two messages.
 */
export function prefixLength(frame: Uint8Array): number {
  let i = 0;
  while (i < frame.length && frame[i] & 0x80) i++;
  return i + 1;
}

// The end offset of the last varint read by readVarint. A module-level cursor
// keeps varint reads from allocating a result pair per field.
let cursor = 0;

/**
 * Reads an unsigned varint of at most `maxBytes` bytes at `offset`, leaving
 * its end in `cursor`. Returns -1 if `bytes` ends inside it and -2 if it runs
 * past `maxBytes`. Values past 2^53 lose precision, which only matters for
 * fields that are skipped or range-checked anyway.
 */
function readVarint(
  bytes: Uint8Array,
  offset: number,
  maxBytes: number,
): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (offset + i >= bytes.length) return -1;
    const byte = bytes[offset + i];
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      cursor = offset + i + 1;
      return value;
    }
    scale *= 0x80;
  }
  return -2;
}

function readBodyVarint(body: Uint8Array, offset: number): number {
  const value = readVarint(body, offset, 10);
  if (value < 0) {
    throw new MalformedFrameError(
      value === -1
        ? "truncated varint in frame"
        : "varint longer than 10 bytes",
    );
  }
  return value;
}

/**
 * Decodes a frame body (the protobuf, without its prefix). Unknown fields are
 * skipped; `message` is a view into `body`.
 *
 * @throws {MalformedFrameError} if the body is not a valid `Message`.
 */
export function decodeFrameBody(body: Uint8Array): Frame {
  const frame: Frame = {};
  let offset = 0;
  while (offset < body.length) {
    const tag = readBodyVarint(body, offset);
    offset = cursor;
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 0) throw new MalformedFrameError("field number 0 in frame");
    switch (wireType) {
      case 0: {
        const value = readBodyVarint(body, offset);
        offset = cursor;
        // uint32 fields keep the low 32 bits, as protobuf decoders do.
        if (field === 1) frame.flag = value;
        else if (field === 3) frame.errorCode = value % 0x1_0000_0000;
        else if (field === 2) {
          throw new MalformedFrameError(
            "frame field 2 is not length-delimited",
          );
        }
        break;
      }
      case 2: {
        const length = readBodyVarint(body, offset);
        offset = cursor;
        if (length > body.length - offset) {
          throw new MalformedFrameError(
            "length-delimited field overruns frame",
          );
        }
        if (field === 2) frame.message = body.subarray(offset, offset + length);
        else if (field === 1 || field === 3) {
          throw new MalformedFrameError(`frame field ${field} is not a varint`);
        }
        offset += length;
        break;
      }
      case 1:
      case 5: {
        if (field <= 3) {
          throw new MalformedFrameError(
            `frame field ${field} has a fixed width`,
          );
        }
        offset += wireType === 1 ? 8 : 4;
        if (offset > body.length) {
          throw new MalformedFrameError("fixed-width field overruns frame");
        }
        break;
      }
      default:
        throw new MalformedFrameError(`unsupported wire type ${wireType}`);
    }
  }
  return frame;
}

/**
 * Reads a data channel as a byte stream of frames: a frame may be split over
 * several channel messages, and one message may hold several frames.
 *
 * Memory is bounded by the frame limit: a partial frame is kept in one buffer
 * of at most `maxFrameSize` bytes, and a prefix announcing a larger frame is
 * refused at once, before its body arrives.
 *
 * The common split, the one go, js and p2prtc send (the prefix in one
 * message, the whole body in the next), costs no copy: only the prefix is
 * held, and the body is decoded where it arrives. The frame buffer is made
 * only for a body that is itself split, so a stream that never receives one
 * never holds it.
 *
 * After `push` has thrown, the stream is out of sync and the decoder must not
 * be used again.
 */
export class FrameDecoder {
  /** The largest frame accepted, prefix included. */
  readonly maxFrameSize: number;
  /** The most bytes a valid prefix can take under {@linkcode maxFrameSize}. */
  readonly #maxPrefix: number;
  /** The bytes of a prefix not yet complete. */
  #prefix: Uint8Array | undefined;
  /** Prefix bytes of the frame in progress (0: none in progress). */
  #prefixLength = 0;
  /** The body length of the frame in progress, once its prefix is whole. */
  #bodyLength = -1;
  /** The body bytes of the frame in progress, when its body is split. */
  #body: Uint8Array | undefined;
  #bodyHeld = 0;

  /** Makes a decoder; see {@linkcode FrameDecoderOptions}. */
  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameSize = options.maxFrameSize ?? MAX_FRAME_SIZE;
    this.#maxPrefix = varintLength(this.maxFrameSize);
  }

  /** Bytes held from a frame not yet complete, prefix included. */
  get bufferedBytes(): number {
    return this.#prefixLength + this.#bodyHeld;
  }

  /**
   * Decodes every frame that `chunk` completes, in order. The frame's
   * `message` is a view that is valid only during the callback.
   *
   * @throws {FrameTooLargeError} for a frame over the limit.
   * @throws {MalformedFrameError} for bytes that are not a frame.
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void): void {
    let offset = 0;
    if (this.#prefixLength > 0) offset = this.#continue(chunk, onFrame);
    while (offset < chunk.length) {
      const bodyLength = readVarint(chunk, offset, this.#maxPrefix);
      if (bodyLength === -1) {
        this.#holdPrefix(chunk, offset);
        return;
      }
      const prefixEnd = cursor;
      const size = this.#checkSize(bodyLength, prefixEnd - offset);
      if (offset + size > chunk.length) {
        this.#prefixLength = prefixEnd - offset;
        this.#bodyLength = bodyLength;
        if (prefixEnd < chunk.length) this.#holdBody(chunk.subarray(prefixEnd));
        return;
      }
      onFrame(decodeFrameBody(chunk.subarray(prefixEnd, offset + size)));
      offset += size;
    }
  }

  /** Validates a prefix; returns the frame's size, prefix included. */
  #checkSize(bodyLength: number, prefixLength: number): number {
    if (bodyLength === -2) {
      // More prefix bytes than any frame under the limit needs.
      throw new FrameTooLargeError(Infinity, this.maxFrameSize);
    }
    const size = prefixLength + bodyLength;
    if (size > this.maxFrameSize) {
      throw new FrameTooLargeError(size, this.maxFrameSize);
    }
    return size;
  }

  /** Keeps the start of a prefix that `chunk` ends inside. */
  #holdPrefix(chunk: Uint8Array, offset: number): void {
    this.#prefix ??= new Uint8Array(this.#maxPrefix);
    this.#prefix.set(chunk.subarray(offset), this.#prefixLength);
    this.#prefixLength += chunk.length - offset;
  }

  #holdBody(bytes: Uint8Array): void {
    this.#body ??= new Uint8Array(this.maxFrameSize);
    this.#body.set(bytes, this.#bodyHeld);
    this.#bodyHeld += bytes.length;
  }

  /** Forgets the frame in progress, before it is handed out. */
  #clear(): void {
    this.#prefixLength = 0;
    this.#bodyLength = -1;
    this.#bodyHeld = 0;
  }

  /** Continues the frame in progress from `chunk`; returns the bytes used. */
  #continue(chunk: Uint8Array, onFrame: (frame: Frame) => void): number {
    let offset = 0;
    // The prefix itself may be split: take bytes one at a time until it ends.
    while (this.#bodyLength < 0) {
      if (offset >= chunk.length) return offset;
      const prefix = this.#prefix!;
      prefix[this.#prefixLength++] = chunk[offset++];
      const bodyLength = readVarint(
        prefix.subarray(0, this.#prefixLength),
        0,
        this.#maxPrefix,
      );
      if (bodyLength !== -1) {
        this.#checkSize(bodyLength, this.#prefixLength);
        this.#bodyLength = bodyLength;
      }
    }
    const missing = this.#bodyLength - this.#bodyHeld;
    if (this.#bodyHeld === 0 && chunk.length - offset >= missing) {
      // The whole body is here: decode it in place.
      this.#clear();
      onFrame(decodeFrameBody(chunk.subarray(offset, offset + missing)));
      return offset + missing;
    }
    const take = Math.min(missing, chunk.length - offset);
    this.#holdBody(chunk.subarray(offset, offset + take));
    offset += take;
    if (this.#bodyHeld === this.#bodyLength) {
      const body = this.#body!.subarray(0, this.#bodyLength);
      this.#clear();
      onFrame(decodeFrameBody(body));
    }
    return offset;
  }
}
