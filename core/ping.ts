/**
 * The libp2p ping protocol (`/ipfs/ping/1.0.0`): the dialer sends 32 random
 * bytes, the listener sends them back, for as long as the stream stays open.
 *
 * @module
 */

import { P2prtcError } from "./errors.ts";
import type { NegotiatedStream } from "./multistream.ts";

/** The protocol id of libp2p ping. */
export const PING_PROTOCOL = "/ipfs/ping/1.0.0";

const PING_SIZE = 32;

/** The peer answered a ping with other bytes, or ended the stream. */
export class PingError extends P2prtcError {
  /** Makes the error; `message` says what went wrong. */
  constructor(message: string) {
    super("ERR_PING_FAILED", message);
  }
}

/**
 * Answers pings on `stream` until the peer closes it: every 32 bytes read are
 * written back.
 */
export async function handlePing(stream: NegotiatedStream): Promise<void> {
  const writer = stream.writable.getWriter();
  let pending = new Uint8Array(0);
  try {
    for await (const chunk of stream.readable) {
      const bytes = new Uint8Array(pending.length + chunk.length);
      bytes.set(pending);
      bytes.set(chunk, pending.length);
      const whole = bytes.length - bytes.length % PING_SIZE;
      if (whole > 0) await writer.write(bytes.subarray(0, whole));
      pending = bytes.slice(whole);
    }
    await writer.close();
  } finally {
    writer.releaseLock();
  }
}

/**
 * Sends one ping on `stream` and waits for its echo.
 *
 * @returns the round-trip time in milliseconds.
 * @throws {PingError} if the echo differs or the stream ends first.
 */
export async function ping(
  stream: NegotiatedStream,
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const payload = crypto.getRandomValues(new Uint8Array(PING_SIZE));
  const reader = stream.readable.getReader({ mode: "byob" });
  const writer = stream.writable.getWriter();
  const onAbort = () => stream.reset();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    const started = performance.now();
    await writer.write(payload);
    let echo = new Uint8Array(PING_SIZE);
    let received = 0;
    while (received < PING_SIZE) {
      const { value, done } = await reader.read(echo.subarray(received));
      if (done || !value) throw new PingError("the peer ended the ping stream");
      received += value.length;
      echo = new Uint8Array(value.buffer, 0, PING_SIZE);
    }
    const rtt = performance.now() - started;
    if (!echo.every((byte, i) => byte === payload[i])) {
      throw new PingError("the ping echo differs from what was sent");
    }
    return rtt;
  } catch (error) {
    options.signal?.throwIfAborted();
    throw error;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
    writer.releaseLock();
  }
}
