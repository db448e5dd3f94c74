import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  decodeFrameBody,
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  prefixLength,
} from "../core/framing.ts";
import { FrameTooLargeError, MalformedFrameError } from "../core/errors.ts";
import { Message } from "../proto/message.ts";
import { random, randomBytes } from "./random.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk, (frame) =>
      frames.push({
        ...frame,
        message: frame.message?.slice(),
      }));
  }
  return frames;
}

Deno.test("framing: the spec's byte examples", () => {
  strictEqual(hex(encodeFrame({ flag: Flag.FIN })), "02 08 00");
  strictEqual(hex(encodeFrame({ flag: Flag.STOP_SENDING })), "02 08 01");
  strictEqual(hex(encodeFrame({ flag: Flag.RESET })), "02 08 02");
  strictEqual(hex(encodeFrame({ flag: Flag.FIN_ACK })), "02 08 03");
  strictEqual(
    hex(encodeFrame({ flag: Flag.RESET, errorCode: 0 })),
    "04 08 02 18 00",
  );
  strictEqual(
    hex(encodeFrame({ message: new TextEncoder().encode("hi") })),
    "04 12 02 68 69",
  );
});

Deno.test("framing: a full data frame is exactly 16384 bytes", () => {
  const frame = encodeFrame({ message: new Uint8Array(MAX_PAYLOAD_SIZE) });
  ok(frame.length <= MAX_FRAME_SIZE);
  strictEqual(prefixLength(frame), 2);
  // A payload that would not fit is refused rather than sent.
  throws(
    () =>
      encodeFrame({ flag: 0, message: new Uint8Array(MAX_PAYLOAD_SIZE + 3) }),
    FrameTooLargeError,
  );
});

Deno.test("framing: encodes into a caller's buffer", () => {
  const target = new Uint8Array(MAX_FRAME_SIZE);
  const frame = encodeFrame({ flag: Flag.FIN }, target);
  strictEqual(frame.buffer, target.buffer);
  strictEqual(hex(frame), "02 08 00");
});

Deno.test("framing: agrees with the protons-generated codec both ways", () => {
  const next = random(1);
  for (let i = 0; i < 500; i++) {
    const frame: Frame = {};
    if (next() < 0.5) frame.flag = Math.floor(next() * 4);
    if (next() < 0.7) {
      frame.message = randomBytes(next, Math.floor(next() * 300));
    }
    if (next() < 0.3) frame.errorCode = Math.floor(next() * 0x1_0000_0000);

    const ours = encodeFrame(frame);
    const body = ours.subarray(prefixLength(ours));
    const theirs = Message.encode({
      flag: frame.flag === undefined
        ? undefined
        : Object.values(Message.Flag)[frame.flag] as Message.Flag,
      message: frame.message as Uint8Array<ArrayBuffer> | undefined,
      errorCode: frame.errorCode,
    });
    deepStrictEqual(body, theirs);

    const decoded = decodeFrameBody(theirs);
    deepStrictEqual(decoded, {
      ...(frame.flag === undefined ? {} : { flag: frame.flag }),
      ...(frame.message === undefined ? {} : { message: frame.message }),
      ...(frame.errorCode === undefined ? {} : { errorCode: frame.errorCode }),
    });
  }
});

Deno.test("framing: unknown fields and unknown flags are read past", () => {
  // flag 9 (unknown), field 7 varint, field 8 bytes, field 9 fixed32,
  // field 10 fixed64, then the message "ok".
  const body = new Uint8Array([
    0x08,
    0x09,
    0x38,
    0x96,
    0x01,
    0x42,
    0x02,
    0xaa,
    0xbb,
    0x4d,
    1,
    2,
    3,
    4,
    0x51,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    0x12,
    0x02,
    0x6f,
    0x6b,
  ]);
  const frame = decodeFrameBody(body);
  strictEqual(frame.flag, 9);
  strictEqual(new TextDecoder().decode(frame.message), "ok");
});

Deno.test("framing: malformed bodies are refused with MalformedFrameError", () => {
  const bad = [
    [0x12, 0x05, 0x01], // message longer than the frame
    [0x08], // truncated varint
    [0x0a, 0x00], // flag as bytes
    [0x10, 0x01], // message as a varint
    [0x0b], // wire type 3 (group)
    [0x00, 0x00], // field 0
    [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  ];
  for (const bytes of bad) {
    throws(() => decodeFrameBody(new Uint8Array(bytes)), MalformedFrameError);
  }
});

Deno.test("framing: a frame split over messages, byte by byte, decodes", () => {
  const payload = new Uint8Array(MAX_PAYLOAD_SIZE).map((_, i) => i);
  const bytes = new Uint8Array([
    ...encodeFrame({ message: payload }),
    ...encodeFrame({ flag: Flag.FIN }),
  ]);
  const decoder = new FrameDecoder();
  const frames = decodeAll(
    decoder,
    Array.from(bytes, (b) => new Uint8Array([b])),
  );
  strictEqual(frames.length, 2);
  deepStrictEqual(frames[0].message, payload);
  strictEqual(frames[1].flag, Flag.FIN);
  strictEqual(decoder.bufferedBytes, 0);
});

Deno.test("framing: several frames in one message decode in order", () => {
  const parts = ["a", "bc", "def"].map((s) =>
    encodeFrame({ message: new TextEncoder().encode(s) })
  );
  const joined = new Uint8Array([...parts[0], ...parts[1], ...parts[2]]);
  // Cut in the middle of the second frame's prefix.
  const frames = decodeAll(new FrameDecoder(), [
    joined.subarray(0, 4),
    joined.subarray(4),
  ]);
  deepStrictEqual(
    frames.map((f) => new TextDecoder().decode(f.message)),
    ["a", "bc", "def"],
  );
});

Deno.test("framing: an oversized frame is refused from its prefix alone", () => {
  // 16383 announced + 2 prefix bytes = 16385.
  const decoder = new FrameDecoder();
  throws(
    () => decoder.push(new Uint8Array([0xff, 0x7f]), () => {}),
    (error: unknown) =>
      error instanceof FrameTooLargeError && error.size === 16385 &&
      error.code === "ERR_FRAME_TOO_LARGE",
  );
  // Split prefix: the refusal comes as soon as the prefix is whole.
  const split = new FrameDecoder();
  split.push(new Uint8Array([0xff]), () => {});
  throws(
    () => split.push(new Uint8Array([0x7f]), () => {}),
    FrameTooLargeError,
  );
  // A prefix longer than any valid one.
  throws(
    () => new FrameDecoder().push(new Uint8Array([0x80, 0x80, 0x80]), () => {}),
    FrameTooLargeError,
  );
});

Deno.test("framing: a frame of exactly 16384 bytes is accepted", () => {
  const frame = encodeFrame({ message: new Uint8Array(16384 - 2 - 1 - 2) });
  strictEqual(frame.length, 16384);
  strictEqual(decodeAll(new FrameDecoder(), [frame]).length, 1);
});

Deno.test("framing: a larger limit can be configured", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 256 * 1024 + 1024 });
  const payload = 100_000;
  const body = [0x12, ...varint(payload), ...new Uint8Array(payload)];
  const frames = decodeAll(decoder, [
    new Uint8Array(varint(body.length)),
    new Uint8Array(body),
  ]);
  strictEqual(frames[0].message?.length, payload);
});

function varint(value: number): number[] {
  const out = [];
  for (; value >= 0x80; value = Math.floor(value / 0x80)) {
    out.push((value & 0x7f) | 0x80);
  }
  return [...out, value];
}
