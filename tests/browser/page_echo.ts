/**
 * What the WebRTC-Direct dialing pages share (`direct_dial_entry.ts` with
 * p2prtc, `libp2p_dial_entry.ts` with js-libp2p): an echo checked byte for
 * byte as it arrives, and a bounded wait for handles to close.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import type { HandleCount } from "../../core/backend.ts";

/** What a page reports after dialing, pinging and echoing. */
export interface DialEchoResult {
  /** The peer id the dialer authenticated. */
  remotePeer: string;
  /** From the dial call to an authenticated connection, in ms. */
  dialMs: number;
  /** One ping round trip, in ms. */
  pingMs: number;
  /** From the first byte written to the last byte of the echo read, in ms. */
  echoMs: number;
  /** Bytes echoed (each way). */
  bytes: number;
  /** The agent version the listener gave in identify, when the page asks. */
  agentVersion?: string;
}

/** What the test process can ask of either dialing page. */
export interface DialEchoPageApi {
  /** The page's peer id. */
  peerId(): string;
  /**
   * Dials `addr`, pings the listener, then echoes `size` bytes of the
   * stream of `seed` on `/echo/1.0.0` and checks the echo. Everything is
   * bounded by `timeoutMs`. The connection stays open.
   */
  dialEcho(
    addr: string,
    size: number,
    seed: number,
    timeoutMs: number,
  ): Promise<DialEchoResult>;
}

/**
 * Writes `data` with `write` while reading the echo from `chunks`, checks
 * each chunk against `data` as it arrives, and returns the time from the
 * start of the write to the end of the echo, in ms. Rejects on the first
 * wrong byte, on a short or long echo, or when `signal` aborts.
 */
export async function echoChecked(
  data: Uint8Array,
  write: (data: Uint8Array) => Promise<void>,
  chunks: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<number> {
  const started = performance.now();
  const reading = (async () => {
    let at = 0;
    for await (const chunk of chunks) {
      signal.throwIfAborted();
      if (at + chunk.byteLength > data.byteLength) {
        throw new Error(
          `the echo is longer than the ${data.byteLength} bytes sent`,
        );
      }
      for (let i = 0; i < chunk.byteLength; i++) {
        if (chunk[i] !== data[at + i]) {
          throw new Error(`the echo differs at byte ${at + i}`);
        }
      }
      at += chunk.byteLength;
    }
    if (at !== data.byteLength) {
      throw new Error(`the echo ended after ${at} of ${data.byteLength} bytes`);
    }
  })();
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  // Whichever loses must not reject unhandled.
  aborted.catch(() => {});
  reading.catch(() => {});
  await Promise.race([Promise.all([write(data), reading]), aborted]);
  return performance.now() - started;
}

/**
 * Polls `count` until nothing is open or `timeoutMs` passes; returns the
 * last count.
 */
export async function settleHandles(
  count: () => HandleCount,
  timeoutMs: number,
): Promise<HandleCount> {
  const until = performance.now() + timeoutMs;
  let open = count();
  while (
    (open.peerConnections > 0 || open.dataChannels > 0) &&
    performance.now() < until
  ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    open = count();
  }
  return open;
}
