/**
 * Helpers for stream tests: stream pairs over any channel pair, reading to
 * the end, byte comparison, and reads that give up on a signal.
 */

import { ok, strictEqual } from "node:assert/strict";
import type { DataChannel } from "../core/backend.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";

/** Two streams over the two ends of one channel, and the channels. */
export interface StreamPair {
  /** The stream on the first end. */
  a: WebRTCStream;
  /** The stream on the second end. */
  b: WebRTCStream;
  /** The first end's channel. */
  ca: DataChannel;
  /** The second end's channel. */
  cb: DataChannel;
}

/** Makes a stream pair; real backends open a channel on a live connection. */
export type MakeStreamPair = (options?: StreamOptions) => Promise<StreamPair>;

/** Wraps both ends of a channel pair in streams. */
export function wrapPair(
  ca: DataChannel,
  cb: DataChannel,
  options?: StreamOptions,
): StreamPair {
  return {
    a: new WebRTCStream(ca, options),
    b: new WebRTCStream(cb, options),
    ca,
    cb,
  };
}

/** Reads a stream to its end and returns all the bytes. */
export async function readAll(
  readable: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of readable) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Asserts two byte arrays are equal, naming the first difference. */
export function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  strictEqual(actual.length, expected.length, "lengths differ");
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      ok(false, `bytes differ at offset ${i}: ${actual[i]} != ${expected[i]}`);
    }
  }
}

/** Writes `data` through the stream's writable and closes it (FIN). */
export async function writeAndClose(
  stream: { writable: WritableStream<Uint8Array> },
  data: Uint8Array,
): Promise<void> {
  const writer = stream.writable.getWriter();
  await writer.write(data);
  await writer.close();
}

/**
 * Writes `data`, then half-closes with `closeWrite()` (FIN, then FIN_ACK).
 * Unlike `writer.close()`, which rejects with a bare `TypeError` once the
 * writable has errored (the Web Streams rule), a reset that lands between
 * the write and the close rejects here with the stream's own typed error.
 */
export async function writeAndCloseWrite(
  stream: {
    writable: WritableStream<Uint8Array>;
    closeWrite(): Promise<void>;
  },
  data: Uint8Array,
): Promise<void> {
  const writer = stream.writable.getWriter();
  try {
    await writer.write(data);
  } finally {
    writer.releaseLock();
  }
  await stream.closeWrite();
}

/**
 * Opens `protocol` (an echo) on `conn`, sends `data` and its FIN, and
 * asserts the same bytes come back.
 */
export async function echoOnce(
  conn: {
    newStream(protocol: string): Promise<{
      readable: ReadableStream<Uint8Array>;
      writable: WritableStream<Uint8Array>;
    }>;
  },
  data: Uint8Array,
  protocol = "/echo/1.0.0",
): Promise<void> {
  const stream = await conn.newStream(protocol);
  const [back] = await Promise.all([
    readAll(stream.readable),
    writeAndClose(stream, data),
  ]);
  assertBytes(back, data);
}

/**
 * Reads one chunk, giving up when `signal` aborts. Giving up releases the
 * reader's lock, which rejects the pending read without consuming anything,
 * so the next read gets the data this one would have had.
 */
export async function readWithSignal(
  readable: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  signal?.throwIfAborted();
  const reader = readable.getReader();
  const onAbort = () => reader.releaseLock();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await reader.read();
  } catch (error) {
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!signal?.aborted) reader.releaseLock();
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets pending microtasks and one macrotask turn run. */
export function tick(): Promise<void> {
  return delay(0);
}

/** Whether `promise` has settled, without waiting for it. */
export async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol();
  const result = await Promise.race([
    promise.then(() => true, () => true),
    Promise.resolve(marker),
  ]);
  return result !== marker;
}
