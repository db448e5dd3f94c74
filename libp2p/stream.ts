/**
 * A {@linkcode WebRTCStream} as a js-libp2p 3.x `Stream`, so js-libp2p's
 * protocols run over p2prtc's data channels: the framing, FIN / FIN_ACK,
 * STOP_SENDING and RESET stay p2prtc's; js-libp2p sees its own stream
 * states and events.
 *
 * @module
 */

import { AbstractStream, type AbstractStreamInit } from "@libp2p/utils";
import type { AbortOptions } from "@libp2p/interface";
import { raceSignal } from "race-signal";
import type { Uint8ArrayList } from "uint8arraylist";
import { StreamResetError, StreamStoppedError } from "../core/errors.ts";
import type { WebRTCStream } from "../core/stream.ts";

/** Options for {@linkcode DataChannelStream}. */
export interface DataChannelStreamInit
  extends Omit<AbstractStreamInit, "id" | "maxMessageSize"> {
  /**
   * Bytes handed to the data channel and not yet sent before `send()`
   * returns `false` and the writer waits for `drain`. Default 256 KiB.
   */
  maxPendingWrite?: number;
}

let nextId = 0;

/**
 * A js-libp2p stream over a {@linkcode WebRTCStream}. Reading is pushed from
 * the data channel (which has no read backpressure; `pause()` stops taking
 * data, and what then piles up is bounded by the stream's read limit).
 * Writes go to the channel in the order of `send()`, copied first, since
 * the channel may have to wait before it can take them.
 */
export class DataChannelStream extends AbstractStream {
  readonly #stream: WebRTCStream;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #maxPendingWrite: number;
  readonly #pumped: Promise<void>;
  #pendingWrite = 0;
  #paused: PromiseWithResolvers<void> | undefined;

  /** Wraps `stream`, taking both its halves' locks. */
  constructor(stream: WebRTCStream, init: DataChannelStreamInit) {
    super({ ...init, id: String(stream.id ?? `p${nextId++}`) });
    this.#stream = stream;
    this.#maxPendingWrite = init.maxPendingWrite ?? 256 * 1024;
    this.#writer = stream.writable.getWriter();
    this.#pumped = this.#pump();
    // Both halves done (or the channel gone): the stream is over even if
    // js-libp2p is still waiting for something, once what was read is in.
    Promise.all([stream.closed, this.#pumped]).then(() => {
      if (this.status === "open" || this.status === "closing") {
        this.onTransportClosed();
      }
    });
  }

  async #pump(): Promise<void> {
    const reader = this.#stream.readable.getReader();
    try {
      while (true) {
        if (this.#paused) await this.#paused.promise;
        const { done, value } = await reader.read();
        if (done) {
          this.onRemoteCloseWrite();
          return;
        }
        this.onData(value);
      }
    } catch (error) {
      this.#failed(error);
    } finally {
      reader.releaseLock();
    }
  }

  /**
   * Reports a failure of the underlying stream to js-libp2p, once. A reset
   * js-libp2p asked for finds the stream no longer open.
   */
  #failed(error: unknown): void {
    if (this.status !== "open" && this.status !== "closing") return;
    if (error instanceof StreamResetError) {
      if (error.remote) this.onRemoteReset();
      // p2prtc reset on its own: a malformed frame, an overfull read buffer.
      else this.abort(error);
    } else if (error instanceof StreamStoppedError) {
      this.onRemoteCloseRead();
    }
    // A StreamClosedError is the echo of our own closeRead or closeWrite.
  }

  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
    const bytes = data.slice();
    this.#pendingWrite += bytes.byteLength;
    this.#writer.write(bytes).then(
      () => this.#wrote(bytes.byteLength),
      (error) => {
        this.#wrote(bytes.byteLength);
        this.#failed(error);
      },
    );
    return {
      sentBytes: bytes.byteLength,
      canSendMore: this.#pendingWrite < this.#maxPendingWrite,
    };
  }

  #wrote(length: number): void {
    this.#pendingWrite -= length;
    if (this.writableNeedsDrain && this.#pendingWrite < this.#maxPendingWrite) {
      this.safeDispatchEvent("drain");
    }
  }

  sendReset(): void {
    this.#stream.reset();
  }

  async sendCloseWrite(options?: AbortOptions): Promise<void> {
    // Closing the writer sends FIN after the writes still queued in it.
    const closing = this.#writer.close();
    try {
      await raceSignal(closing, options?.signal);
    } catch (error) {
      closing.catch(() => {});
      if (options?.signal?.aborted) this.#stream.reset();
      throw error;
    }
  }

  sendCloseRead(): Promise<void> {
    this.#stream.closeRead();
    return Promise.resolve();
  }

  sendPause(): void {
    this.#paused ??= Promise.withResolvers();
  }

  sendResume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }
}
