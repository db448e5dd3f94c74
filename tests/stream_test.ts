/**
 * The stream state machine over the deterministic fake channel: every
 * scenario of `stream_scenarios.ts`, then the ones that need the fake's
 * control of the wire (split, joined, dropped or held frames, a stalled
 * `bufferedAmount`, an abrupt close).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  FrameTooLargeError,
  StreamErrorCode,
  StreamResetError,
} from "../core/errors.ts";
import { Flag, MAX_FRAME_SIZE, MAX_PAYLOAD_SIZE } from "../core/framing.ts";
import type { StreamOptions } from "../core/stream.ts";
import { createChannelPair, type FakeLinkOptions } from "./fake_channel.ts";
import { random, randomBytes } from "./random.ts";
import {
  assertBytes,
  isSettled,
  readAll,
  tick,
  wrapPair,
  writeAndClose,
} from "./stream_helpers.ts";
import { streamScenarios } from "./stream_scenarios.ts";

const text = (s: string) => new TextEncoder().encode(s);
const isFlag = (flag: number) => (body: Uint8Array) =>
  body.length === 2 && body[0] === 0x08 && body[1] === flag;

function fakePair(link: FakeLinkOptions = {}, options?: StreamOptions) {
  const [ca, cb] = createChannelPair(link);
  return { ...wrapPair(ca, cb, options), ca, cb };
}

for (const scenario of streamScenarios) {
  Deno.test(`stream (fake): ${scenario.name}`, () =>
    scenario.run((options) => Promise.resolve(fakePair({}, options))));
}

Deno.test("stream (fake): 01 an empty write sends nothing", async () => {
  const { a, b, ca } = fakePair();
  const writer = a.writable.getWriter();
  await writer.write(new Uint8Array(0));
  strictEqual(ca.sent.length, 0);
  await writer.close();
  strictEqual((await readAll(b.readable)).length, 0);
  await b.close();
});

Deno.test("stream (fake): 06 a remote reset wakes a write blocked on bufferedAmount", async () => {
  const { a, b, ca } = fakePair({}, { maxBufferedAmount: 32 * 1024 });
  ca.stall();
  const writing = a.writable.getWriter().write(new Uint8Array(200 * 1024));
  await tick();
  ok(!(await isSettled(writing)), "the write waits for the channel to drain");
  b.reset(StreamErrorCode.RATE_LIMITED);
  await rejects(
    writing,
    (e: unknown) =>
      e instanceof StreamResetError && e.remote &&
      e.errorCode === StreamErrorCode.RATE_LIMITED,
  );
  await a.closed;
});

Deno.test("stream (fake): 07 cleanup happens exactly once", async () => {
  const { a, b, ca, cb } = fakePair();
  cb.intercept = (body) => isFlag(Flag.FIN_ACK)(body) ? "hold" : "deliver";
  const closing = a.closeWrite();
  await tick();
  ok(!(await isSettled(closing)), "waiting for the held FIN_ACK");
  a.reset();
  a.reset();
  b.reset();
  await rejects(closing, StreamResetError);
  await Promise.all([a.closed, b.closed]);
  strictEqual(ca.closeCalls, 1);
  ok(cb.closeCalls <= 1);
});

Deno.test("stream (fake): 09 FIN_ACK lost: closeWrite resolves after the timeout", async () => {
  const { a, b, ca, cb } = fakePair({}, { finAckTimeout: 50 });
  cb.intercept = (body) => isFlag(Flag.FIN_ACK)(body) ? "drop" : "deliver";
  await writeAndClose(a, text("data"));
  strictEqual(ca.readyState, "open", "the read half is still open");
  strictEqual(new TextDecoder().decode(await readAll(b.readable)), "data");
  await b.closeWrite(); // a answers this FIN; b's FIN_ACK was the lost one
  await Promise.all([a.closed, b.closed]);
  strictEqual(ca.closeCalls + cb.closeCalls >= 1, true);
});

Deno.test("stream (fake): 09 FIN_ACK held back: closeWrite waits for it", async () => {
  const { a, b, cb } = fakePair();
  cb.intercept = (body) => isFlag(Flag.FIN_ACK)(body) ? "hold" : "deliver";
  const closing = a.closeWrite();
  await tick();
  ok(!(await isSettled(closing)));
  cb.intercept = undefined;
  cb.releaseHeld();
  await closing;
  await b.close();
  await Promise.all([a.closed, b.closed]);
});

Deno.test("stream (fake): 10 FIN_ACK is sent even after our STOP_SENDING", async () => {
  const { a, b, cb } = fakePair();
  const closing = a.closeWrite();
  b.closeRead(); // crosses the FIN on the wire
  await closing;
  ok(cb.sentFrames.some(isFlag(Flag.STOP_SENDING)));
  ok(cb.sentFrames.some(isFlag(Flag.FIN_ACK)));
  await b.close();
  await Promise.all([a.closed, b.closed]);
});

Deno.test("stream (fake): 11 an abrupt close during a transfer is a reset on both sides", async () => {
  const { a, b, ca } = fakePair();
  const writer = a.writable.getWriter();
  await writer.write(new Uint8Array(1000));
  const reading = readAll(b.readable);
  ca.abruptClose();
  await rejects(
    reading,
    (e: unknown) => e instanceof StreamResetError && e.remote,
  );
  await rejects(writer.write(new Uint8Array(10)), StreamResetError);
  await Promise.all([a.closed, b.closed]);
});

for (
  const [name, link] of [
    ["13 frames split into 1-byte messages", { splitInto: 1 }],
    ["13 frames split into 1000-byte messages", { splitInto: 1000 }],
    ["14 several frames joined in one message", { join: true }],
  ] as const
) {
  Deno.test(`stream (fake): ${name} decode exactly`, async () => {
    const { a, b } = fakePair(link);
    const data = randomBytes(random(14), 200_000);
    const writer = a.writable.getWriter();
    const writing = (async () => {
      // Many small writes, so a join gathers several frames.
      for (let i = 0; i < data.length; i += 777) {
        await writer.write(data.subarray(i, i + 777));
      }
      await writer.close();
    })();
    assertBytes(await readAll(b.readable), data);
    await writing;
    await b.close();
    await Promise.all([a.closed, b.closed]);
  });
}

Deno.test("stream (fake): 15 an incoming frame over 16384 bytes resets with a typed error", async () => {
  const { a, b, ca, cb } = fakePair();
  const reading = b.readable.getReader().read();
  // A prefix announcing 16383 body bytes: 16385 in all.
  ca.send(new Uint8Array([0xff, 0x7f]));
  await rejects(
    reading,
    (e: unknown) =>
      e instanceof StreamResetError && !e.remote &&
      e.errorCode === StreamErrorCode.PROTOCOL_VIOLATION &&
      e.cause instanceof FrameTooLargeError,
  );
  ok(cb.sentFrames.some((m) => m[0] === 0x08 && m[1] === Flag.RESET));
  await rejects(
    a.readable.getReader().read(),
    (e: unknown) =>
      e instanceof StreamResetError && e.remote &&
      e.errorCode === StreamErrorCode.PROTOCOL_VIOLATION,
  );
});

Deno.test("stream (fake): 15/16 frames go out whole up to 4096 bytes, else prefix then body, at most 16384 bytes", async () => {
  const { a, b, ca } = fakePair();
  const [, received] = await Promise.all([
    writeAndClose(a, randomBytes(random(16), 1 << 20)),
    readAll(b.readable),
  ]);
  strictEqual(received.length, 1 << 20);
  let frames = 0;
  for (let i = 0; i < ca.sent.length; i++, frames++) {
    const message = ca.sent[i];
    const prefix = varintAt(message);
    if (prefix.size < message.length) {
      // Whole: go reads through a 4096-byte buffer.
      ok(message.length <= 4096, "a whole frame fits go's buffer");
      strictEqual(prefix.value, message.length - prefix.size);
      continue;
    }
    const body = ca.sent[++i];
    strictEqual(prefix.value, body.length);
    ok(prefix.size + body.length <= MAX_FRAME_SIZE);
  }
  // 1 MiB is 65 frames of data and a FIN.
  strictEqual(frames, Math.ceil((1 << 20) / MAX_PAYLOAD_SIZE) + 1);
  strictEqual(ca.sentFrames.length, frames);
  await b.close();
});

/** The varint at the start of `bytes`: its value and its size in bytes. */
function varintAt(bytes: Uint8Array): { value: number; size: number } {
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    value += (bytes[i] & 0x7f) * 2 ** (7 * i);
    if ((bytes[i] & 0x80) === 0) return { value, size: i + 1 };
  }
  throw new Error("no varint");
}

Deno.test("stream (fake): 17 no empty data frame and no stray flags are sent", async () => {
  const { a, b, ca, cb } = fakePair();
  const writer = a.writable.getWriter();
  await writer.write(new Uint8Array(0));
  await writer.write(text("request"));
  await writer.write(new Uint8Array(0));
  await writer.close();
  strictEqual(new TextDecoder().decode(await readAll(b.readable)), "request");
  await writeAndClose(b, text("response"));
  strictEqual(new TextDecoder().decode(await readAll(a.readable)), "response");
  const bodies = (frames: Uint8Array[]) =>
    frames.map((m) => Array.from(m.subarray(0, 2)));
  // a: the data, FIN, then FIN_ACK for b's FIN; never an empty `12 00` frame.
  deepStrictEqual(bodies(ca.sentFrames), [[0x12, 7], [0x08, 0], [0x08, 3]]);
  deepStrictEqual(bodies(cb.sentFrames), [[0x08, 3], [0x12, 8], [0x08, 0]]);
  await Promise.all([a.closed, b.closed]);
});

Deno.test("stream (fake): 19 a write waits on a stalled channel and resumes on the low-water event", async () => {
  const { a, b, ca } = fakePair({}, {
    maxBufferedAmount: 32 * 1024,
    bufferedAmountLowThreshold: 8 * 1024,
  });
  ca.stall();
  const writer = a.writable.getWriter();
  const writing = writer.write(new Uint8Array(100 * 1024));
  await tick();
  ok(!(await isSettled(writing)));
  ok(ca.bufferedAmount > 32 * 1024);
  ok(ca.bufferedAmount <= 32 * 1024 + MAX_FRAME_SIZE);
  ca.unstall();
  await writing;
  await writer.close();
  strictEqual((await readAll(b.readable)).length, 100 * 1024);
  await b.close();
});

Deno.test("stream (fake): 19 aborting a waiting write resets the stream", async () => {
  const { a, b, ca } = fakePair({}, { maxBufferedAmount: 16 * 1024 });
  ca.stall();
  const writer = a.writable.getWriter();
  const writing = writer.write(new Uint8Array(64 * 1024));
  await tick();
  ok(!(await isSettled(writing)));
  const aborting = writer.abort(new Error("write timed out"));
  await rejects(writing, /write timed out/);
  await aborting;
  ca.unstall();
  // The data that was queued before the RESET may arrive; the end is a reset.
  await rejects(readAll(b.readable), StreamResetError);
  await Promise.all([a.closed, b.closed]);
});

Deno.test("stream (fake): 19 closeWrite gives up on its signal and resets", async () => {
  const { a, b, cb } = fakePair();
  cb.intercept = (body) => isFlag(Flag.FIN_ACK)(body) ? "drop" : "deliver";
  await rejects(
    a.closeWrite({ signal: AbortSignal.timeout(20) }),
    (e: unknown) => (e as Error).name === "TimeoutError",
  );
  await a.closed;
  await rejects(b.writable.getWriter().write(text("x")), StreamResetError);
});

Deno.test("stream (fake): 20 a stream nobody reads is reset at its read bound; others go on", async () => {
  const idle = fakePair({}, { maxReadBufferSize: 256 * 1024 });
  const busy = fakePair();
  const flooding = (async () => {
    const writer = idle.a.writable.getWriter();
    for (let i = 0; i < 64; i++) await writer.write(new Uint8Array(16 * 1024));
  })();
  const data = randomBytes(random(20), 1 << 20);
  const [, got] = await Promise.all([
    writeAndClose(busy.a, data),
    readAll(busy.b.readable),
  ]);
  assertBytes(got, data);
  await rejects(
    flooding,
    (e: unknown) =>
      e instanceof StreamResetError && e.remote &&
      e.errorCode === StreamErrorCode.RESOURCE_LIMIT_EXCEEDED,
  );
  await rejects(
    idle.b.readable.getReader().read(),
    (e: unknown) =>
      e instanceof StreamResetError &&
      e.errorCode === StreamErrorCode.RESOURCE_LIMIT_EXCEEDED,
  );
  await busy.b.close();
  await Promise.all([idle.a.closed, idle.b.closed, busy.a.closed]);
});

Deno.test("stream (fake): 20 two writers on two streams both finish", async () => {
  const one = fakePair();
  const two = fakePair();
  const next = random(21);
  const [d1, d2] = [randomBytes(next, 1 << 20), randomBytes(next, 1 << 20)];
  const [, , r1, r2] = await Promise.all([
    writeAndClose(one.a, d1),
    writeAndClose(two.a, d2),
    readAll(one.b.readable),
    readAll(two.b.readable),
  ]);
  assertBytes(r1, d1);
  assertBytes(r2, d2);
  await Promise.all([one.b.close(), two.b.close()]);
});

Deno.test("stream (fake): writes wait for a connecting channel to open", async () => {
  const { a, b, ca } = fakePair({ startConnecting: true });
  const writing = writeAndClose(a, text("early"));
  await tick();
  strictEqual(ca.sent.length, 0);
  ca.open();
  await writing;
  strictEqual(new TextDecoder().decode(await readAll(b.readable)), "early");
  await b.close();
});

Deno.test("stream (fake): await using closes gracefully", async () => {
  const { a, b } = fakePair();
  {
    await using stream = a;
    await stream.writable.getWriter().write(text("bye"));
  }
  strictEqual(new TextDecoder().decode(await readAll(b.readable)), "bye");
  await b.close();
  await Promise.all([a.closed, b.closed]);
});
