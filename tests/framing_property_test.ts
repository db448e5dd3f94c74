/**
 * Property tests of the frame decoder on random and corrupted byte streams:
 * it only ever throws the typed framing errors, it always returns (every call
 * is synchronous and consumes its input), and it never holds more than one
 * frame's worth of bytes. Seeded, so a failure names its seed and replays.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { FrameTooLargeError, MalformedFrameError } from "../core/errors.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
} from "../core/framing.ts";
import { WebRTCStream } from "../core/stream.ts";
import { createChannelPair } from "./fake_channel.ts";
import { random, randomBytes } from "./random.ts";

const SEEDS = 300;

/** Cuts `bytes` into random pieces, some empty, some large. */
function randomChunks(next: () => number, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = next() < 0.1 ? 0 : Math.ceil(next() ** 3 * 40_000);
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

function randomFrame(next: () => number): Frame {
  const frame: Frame = {};
  if (next() < 0.3) frame.flag = Math.floor(next() * 6);
  if (next() < 0.8) {
    frame.message = randomBytes(
      next,
      Math.floor(next() ** 2 * MAX_PAYLOAD_SIZE),
    );
  }
  if (next() < 0.1) frame.errorCode = Math.floor(next() * 0x1_0000_0000);
  return frame;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Feeds chunks to a decoder; returns the frames or the typed error. */
function feed(
  chunks: Uint8Array[],
  seed: number,
): { frames: Frame[]; error?: Error } {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    try {
      decoder.push(chunk, (frame) => {
        // Copy the message out: the view is only valid during the callback.
        if (frame.message) frame.message = frame.message.slice();
        frames.push(frame);
      });
    } catch (error) {
      ok(
        error instanceof FrameTooLargeError ||
          error instanceof MalformedFrameError,
        `seed ${seed}: unexpected ${error}`,
      );
      return { frames, error };
    }
    ok(
      decoder.bufferedBytes <= MAX_FRAME_SIZE,
      `seed ${seed}: holds ${decoder.bufferedBytes} bytes`,
    );
  }
  return { frames };
}

Deno.test("framing property: valid streams cut anywhere decode to the same frames", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const next = random(seed);
    const frames = Array.from(
      { length: 1 + Math.floor(next() * 8) },
      () => randomFrame(next),
    );
    const { frames: decoded, error } = feed(
      randomChunks(next, concat(frames.map((f) => encodeFrame(f)))),
      seed,
    );
    ok(!error, `seed ${seed}: ${error}`);
    deepStrictEqual(decoded, frames, `seed ${seed}`);
  }
});

Deno.test("framing property: random bytes give frames or a typed error, nothing else", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const next = random(seed * 7919);
    feed(
      randomChunks(next, randomBytes(next, Math.floor(next() * 70_000))),
      seed,
    );
  }
});

Deno.test("framing property: corrupted streams give frames or a typed error", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const next = random(seed * 104_729);
    const valid = concat(
      Array.from({ length: 4 }, () => encodeFrame(randomFrame(next))),
    );
    const corrupted = valid.slice();
    const edits = 1 + Math.floor(next() * 5);
    for (let i = 0; i < edits; i++) {
      corrupted[Math.floor(next() * corrupted.length)] ^= 1 << (next() * 8);
    }
    const cut = next() < 0.3
      ? corrupted.subarray(0, Math.floor(next() * corrupted.length))
      : corrupted;
    feed(randomChunks(next, cut), seed);
  }
});

Deno.test("framing property: garbage into a stream resets it and touches nothing else", async () => {
  for (let seed = 1; seed <= 50; seed++) {
    const next = random(seed * 31);
    const [ca, cb] = createChannelPair();
    const victim = new WebRTCStream(cb);
    for (const chunk of randomChunks(next, randomBytes(next, 50_000))) {
      if (ca.readyState === "open" && chunk.length > 0) ca.send(chunk);
    }
    ca.close();
    // Whatever the garbage said, the stream ends (a reset, or EOF if it
    // happened to spell FIN), and every error on the way is typed.
    const reader = victim.readable.getReader();
    try {
      while (!(await reader.read()).done);
    } catch (error) {
      ok((error as { code?: string }).code, `seed ${seed}: untyped ${error}`);
    }
    victim.reset();
    await victim.closed;
  }
});
