/**
 * A js-libp2p 3.x stream as a pair of Web Streams, the byte stream that
 * `relaySignaling` runs over.
 *
 * @module
 */

import type {
  Stream,
  StreamCloseEvent,
  StreamMessageEvent,
} from "@libp2p/interface";
import type { SignalingByteStream } from "../signaling/relay.ts";

/** Options for {@linkcode webStreamsOf}. */
export interface WebStreamsOptions {
  /**
   * Chunks the readable holds before the js-libp2p stream is paused (its
   * own read bound then applies). Default 16.
   */
  highWaterMark?: number;
}

/**
 * `stream` as Web Streams, with the meanings `relaySignaling` expects:
 * closing the writable closes the stream's write side, aborting it aborts
 * (resets) the stream, cancelling the readable closes its read side. The
 * readable ends when the peer closes its write side, and fails if the
 * stream is reset or aborted.
 */
export function webStreamsOf(
  stream: Stream,
  options: WebStreamsOptions = {},
): SignalingByteStream {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const finish = (error?: Error) => {
    if (done) return;
    done = true;
    stream.removeEventListener("message", onMessage);
    if (error) controller.error(error);
    else controller.close();
  };
  const onMessage = (event: StreamMessageEvent) => {
    controller.enqueue(event.data.subarray());
    if (
      (controller.desiredSize ?? 0) <= 0 && stream.readStatus === "readable"
    ) {
      stream.pause();
    }
  };
  const onEnd = () => {
    // A reset or an abort ends the readable end too, just before it says
    // why in `close`.
    if (stream.status !== "reset" && stream.status !== "aborted") finish();
  };
  const onClose = (event: StreamCloseEvent) => finish(event.error);

  const readable = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      stream.addEventListener("message", onMessage);
      stream.addEventListener("end", onEnd, { once: true });
      stream.addEventListener("close", onClose, { once: true });
    },
    pull: () => {
      if (stream.readStatus === "paused") stream.resume();
    },
    cancel: async () => {
      done = true;
      stream.removeEventListener("message", onMessage);
      await stream.closeRead().catch(() => {});
    },
  }, { highWaterMark: options.highWaterMark ?? 16 });

  const writable = new WritableStream<Uint8Array>({
    write: async (chunk) => {
      if (!stream.send(chunk)) await stream.onDrain();
    },
    close: () => stream.close(),
    abort: (reason) => {
      stream.abort(
        reason instanceof Error ? reason : new Error(String(reason)),
      );
    },
  });

  return { readable, writable };
}
