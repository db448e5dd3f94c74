/**
 * One libp2p stream over one data channel: the framing, the FIN /
 * STOP_SENDING / RESET / FIN_ACK state machine, backpressure, and Web Streams.
 *
 * @example Request and response over a stream
 * ```ts ignore
 * // `channel` is a DataChannel from any backend.
 * await using stream = new WebRTCStream(channel);
 * const writer = stream.writable.getWriter();
 * await writer.write(new TextEncoder().encode("ping"));
 * await writer.close(); // FIN, then waits for the peer's FIN_ACK
 * for await (const chunk of stream.readable) console.log(chunk);
 * ```
 *
 * @module
 */

import type { DataChannel } from "./backend.ts";
import {
  StreamClosedError,
  StreamErrorCode,
  StreamResetError,
  StreamStoppedError,
} from "./errors.ts";
import {
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  prefixLength,
} from "./framing.ts";

/** Options for {@linkcode WebRTCStream}. */
export interface StreamOptions {
  /**
   * How long {@linkcode WebRTCStream.closeWrite} waits for the peer's
   * FIN_ACK before it closes anyway, in milliseconds. Default 10 000, as go
   * and js use.
   */
  finAckTimeout?: number;
  /**
   * Writes wait while the channel's `bufferedAmount` is above this many
   * bytes. Default 1 MiB.
   */
  maxBufferedAmount?: number;
  /**
   * Waiting writes resume when `bufferedAmount` falls to this many bytes.
   * Default 256 KiB. Above 0, so the channel never runs dry between bursts.
   */
  bufferedAmountLowThreshold?: number;
  /**
   * The most received bytes held for the reader. Data channels have no read
   * backpressure (the stacks deliver as fast as SCTP receives), so a peer
   * that sends past this bound while nothing reads gets the stream reset
   * with `RESOURCE_LIMIT_EXCEEDED`. Default 4 MiB.
   */
  maxReadBufferSize?: number;
  /** The largest frame accepted, prefix included. Default 16384. */
  maxFrameSize?: number;
}

/** Options for {@linkcode WebRTCStream.closeWrite} and {@linkcode WebRTCStream.close}. */
export interface CloseOptions {
  /**
   * Stops waiting for the peer. The stream is then reset, since its graceful
   * close was abandoned, and the call rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

type WriteState = "open" | "fin-sent" | "closed" | "stopped" | "reset";
type ReadState = "open" | "fin" | "stopped" | "reset";

// Every stream encodes into this one buffer: a frame is encoded and handed to
// the channel, which copies it, with no await in between, so it is never
// shared by two frames at once. One buffer per stream would cost 16 KiB each.
const scratch = new Uint8Array(MAX_FRAME_SIZE);

/**
 * The largest frame sent as one message. go reads a channel through a
 * 4096-byte buffer and fails on any larger message, so bigger frames go out
 * as two, the length prefix and then the body, as go and js send them. Every
 * implementation reads frames as a byte stream, so small frames (flags,
 * Noise, multistream-select, small writes) may go whole: one message and,
 * on a stack that sends a packet per message, one packet less each.
 */
const SINGLE_MESSAGE_FRAME_SIZE = 4096;

/**
 * A libp2p stream over one data channel.
 *
 * Bytes written to {@linkcode WebRTCStream.writable} go out in frames of at
 * most 16384 bytes; bytes from the peer come out of
 * {@linkcode WebRTCStream.readable}, a byte stream, so BYOB readers and
 * partial reads work. Both halves close on their own: closing the writable
 * (or {@linkcode WebRTCStream.closeWrite}) sends FIN and waits for FIN_ACK;
 * cancelling the readable (or {@linkcode WebRTCStream.closeRead}) sends
 * STOP_SENDING. Once both halves are done the data channel is closed.
 *
 * Errors are typed: {@linkcode StreamResetError} after a RESET from either
 * side or when the channel closes before the peer's FIN,
 * {@linkcode StreamStoppedError} for writes after the peer's STOP_SENDING,
 * {@linkcode StreamClosedError} for use of a half closed locally, and the
 * framing errors when the peer breaks the wire format (the stream is then
 * reset with `PROTOCOL_VIOLATION`).
 *
 * A read can be given up without losing data: release the reader's lock
 * while its `read()` is pending; the read rejects, nothing is consumed, and a
 * new reader continues where it stopped.
 */
export class WebRTCStream implements AsyncDisposable {
  /** The bytes the peer sent. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to send to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves once both halves are done and the channel is closed. Never rejects. */
  readonly closed: Promise<void>;

  readonly #channel: DataChannel;
  readonly #decoder: FrameDecoder;
  readonly #finAckTimeout: number;
  readonly #maxBufferedAmount: number;
  readonly #maxReadBuffer: number;
  #readLimit: number;
  readonly #onFrame = (frame: Frame) => this.#handleFrame(frame);

  #readState: ReadState = "open";
  #writeState: WriteState = "open";
  #readController!: ReadableByteStreamController;
  #writeController!: WritableStreamDefaultController;
  #resetError: StreamResetError | undefined;
  #finished = false;
  #resolveClosed!: () => void;

  /** Flags asked for before the channel opened, sent when it does. */
  #pendingFlags: number[] = [];
  /** Wakes a write waiting for the channel to open or drain. */
  #wake: PromiseWithResolvers<void> | undefined;
  /** The write in progress, which FIN must follow. */
  #writing: Promise<void> | undefined;
  #closeWrite: Promise<void> | undefined;
  #finAck: PromiseWithResolvers<void> | undefined;
  #finAckTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps `channel`, taking over its handlers. Pass an inbound channel as soon
   * as the backend hands it over, so no message is missed.
   */
  constructor(channel: DataChannel, options: StreamOptions = {}) {
    this.#channel = channel;
    this.#finAckTimeout = options.finAckTimeout ?? 10_000;
    this.#maxBufferedAmount = options.maxBufferedAmount ?? 1024 * 1024;
    this.#maxReadBuffer = options.maxReadBufferSize ?? 4 * 1024 * 1024;
    this.#readLimit = this.#maxReadBuffer;
    this.#decoder = new FrameDecoder({ maxFrameSize: options.maxFrameSize });
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);

    this.readable = new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#readController = controller;
      },
      cancel: () => this.closeRead(),
    }, { highWaterMark: this.#maxReadBuffer });

    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk, controller) => {
        this.#writing = this.#write(chunk, controller.signal);
        return this.#writing;
      },
      close: () => this.#finishWriting(),
      abort: () => this.reset(),
    });

    channel.bufferedAmountLowThreshold = options.bufferedAmountLowThreshold ??
      256 * 1024;
    channel.onopen = () => this.#handleOpen();
    channel.onmessage = (data) => this.#handleMessage(data);
    channel.onbufferedamountlow = () => this.#wakeWriter();
    channel.onerror = (error) => this.#handleChannelClose(error);
    channel.onclose = () => this.#handleChannelClose();
    if (channel.readyState === "closed") this.#handleChannelClose();
  }

  /** The SCTP stream id of the channel, once assigned. */
  get id(): number | null {
    return this.#channel.id;
  }

  /**
   * Sets how many received bytes this stream holds for its reader, up to
   * `maxReadBufferSize` (`Infinity` restores that). A connection holds
   * streams that arrive before the peer is authenticated to a smaller bound
   * than the rest. Past the bound the stream is reset with
   * `RESOURCE_LIMIT_EXCEEDED`, as for `maxReadBufferSize`.
   */
  limitReadBuffer(bytes: number): void {
    this.#readLimit = Math.min(bytes, this.#maxReadBuffer);
  }

  /**
   * Half-closes the stream for writing: waits for writes in progress, sends
   * FIN, and resolves when the peer's FIN_ACK arrives. If it does not arrive
   * within the FIN_ACK timeout, it resolves anyway, as the spec allows, and
   * the channel is closed once the read half is done too. Idempotent.
   *
   * @throws {StreamResetError} if the stream is reset before FIN_ACK.
   */
  closeWrite(options: CloseOptions = {}): Promise<void> {
    if (this.#closeWrite === undefined) {
      // FIN follows the write in progress. Writes after it, and writes still
      // queued in a writer the app holds, fail with StreamClosedError; close
      // the writer itself to send everything queued first.
      if (this.#writeState === "open") {
        this.#writeController.error(new StreamClosedError("write side closed"));
      }
      this.#closeWrite = this.#finishWriting();
    }
    return this.#abortable(this.#closeWrite, options.signal);
  }

  /**
   * Half-closes the stream for reading: sends STOP_SENDING and discards what
   * the peer sends from now on. The readable ends with
   * {@linkcode StreamClosedError} if it was not cancelled. Idempotent.
   */
  closeRead(): void {
    if (this.#readState !== "open") return;
    this.#readState = "stopped";
    this.#sendFlag(Flag.STOP_SENDING);
    try {
      this.#readController.error(new StreamClosedError("read side closed"));
    } catch {
      // Already cancelled by the reader, which is how we may have got here.
    }
    this.#maybeFinish();
  }

  /**
   * Closes both halves gracefully: STOP_SENDING if the peer has not finished
   * writing, then FIN and the wait for FIN_ACK as in
   * {@linkcode WebRTCStream.closeWrite}. Idempotent.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    this.closeRead();
    await this.closeWrite(options);
  }

  /**
   * Aborts the stream: sends RESET (with `errorCode` when given), fails both
   * halves with {@linkcode StreamResetError} and closes the channel at once.
   * Idempotent; does nothing once the stream is closed.
   */
  reset(errorCode?: number): void {
    this.#reset(new StreamResetError(false, errorCode), true);
  }

  /** Closes gracefully, or resets if that fails. Never throws. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      this.reset();
    }
  }

  async #write(chunk: Uint8Array, signal: AbortSignal): Promise<void> {
    for (let offset = 0; offset < chunk.length; offset += MAX_PAYLOAD_SIZE) {
      while (
        this.#writeState === "open" &&
        (this.#channel.readyState !== "open" ||
          this.#channel.bufferedAmount > this.#maxBufferedAmount)
      ) {
        await this.#waitWritable(signal);
      }
      this.#assertWritable();
      const sent = this.#send({
        message: chunk.subarray(offset, offset + MAX_PAYLOAD_SIZE),
      });
      if (!sent) this.#assertWritable();
    }
  }

  #assertWritable(): void {
    switch (this.#writeState) {
      case "open":
        return;
      case "stopped":
        throw new StreamStoppedError();
      case "reset":
        throw this.#resetError;
      default:
        throw new StreamClosedError("write side closed");
    }
  }

  #waitWritable(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const wake = this.#wake ??= Promise.withResolvers();
    const onAbort = () => {
      if (this.#wake === wake) this.#wake = undefined;
      wake.reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return wake.promise.finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  }

  #wakeWriter(): void {
    this.#wake?.resolve();
    this.#wake = undefined;
  }

  /** Sends FIN after the write in progress and waits for FIN_ACK. */
  async #finishWriting(): Promise<void> {
    if (this.#finAck) return this.#finAck.promise;
    if (this.#writing) await this.#writing.catch(() => {});
    if (this.#writeState === "stopped") return;
    this.#assertWritable();
    this.#writeState = "fin-sent";
    this.#finAck = Promise.withResolvers();
    this.#sendFlag(Flag.FIN);
    this.#finAckTimer = setTimeout(() => {
      this.#finAckTimer = undefined;
      // The spec lets us close without FIN_ACK; older rust peers never send it.
      this.#endWriting("closed");
    }, this.#finAckTimeout);
    return this.#finAck.promise;
  }

  /** Ends a write half that sent FIN, with the state it ends in. */
  #endWriting(state: "closed" | "stopped", error?: Error): void {
    clearTimeout(this.#finAckTimer);
    this.#finAckTimer = undefined;
    this.#writeState = state;
    if (error) this.#finAck?.reject(error);
    else this.#finAck?.resolve();
    this.#maybeFinish();
  }

  #abortable(promise: Promise<void>, signal?: AbortSignal): Promise<void> {
    if (!signal) return promise;
    if (signal.aborted) {
      this.reset();
      return Promise.reject(signal.reason);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        this.reset();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      promise.then(resolve, reject).finally(() =>
        signal.removeEventListener("abort", onAbort)
      );
    });
  }

  /** Sends one frame; returns `false` if the channel refused it. */
  #send(frame: Frame): boolean {
    const bytes = encodeFrame(frame, scratch);
    try {
      if (bytes.length <= SINGLE_MESSAGE_FRAME_SIZE) {
        this.#channel.send(bytes);
      } else {
        const prefix = prefixLength(bytes);
        this.#channel.send(bytes.subarray(0, prefix));
        this.#channel.send(bytes.subarray(prefix));
      }
      return true;
    } catch (error) {
      // A stack whose channel died under us (a stale readyState, say).
      this.#handleChannelClose(error as Error);
      return false;
    }
  }

  #sendFlag(flag: number, errorCode?: number): void {
    const state = this.#channel.readyState;
    if (state === "connecting") this.#pendingFlags.push(flag);
    // A channel that is closing or closed can carry nothing; js skips too.
    else if (state === "open") this.#send({ flag, errorCode });
  }

  #handleOpen(): void {
    for (const flag of this.#pendingFlags) this.#sendFlag(flag);
    this.#pendingFlags = [];
    this.#wakeWriter();
  }

  #handleMessage(data: Uint8Array): void {
    if (this.#finished) return;
    try {
      this.#decoder.push(data, this.#onFrame);
    } catch (error) {
      // The byte stream is out of sync and cannot be read any further.
      this.#reset(
        new StreamResetError(
          false,
          StreamErrorCode.PROTOCOL_VIOLATION,
          `stream reset: ${(error as Error).message}`,
          { cause: error },
        ),
        true,
      );
    }
  }

  #handleFrame(frame: Frame): void {
    // Data first, then the flag, should a peer ever put both in one frame.
    if (frame.message !== undefined && frame.message.length > 0) {
      this.#receiveData(frame.message);
    }
    switch (frame.flag) {
      case Flag.FIN:
        this.#receiveFin();
        break;
      case Flag.STOP_SENDING:
        this.#receiveStopSending();
        break;
      case Flag.RESET:
        this.#reset(new StreamResetError(true, frame.errorCode), false);
        break;
      case Flag.FIN_ACK:
        if (this.#writeState === "fin-sent") this.#endWriting("closed");
        break;
        // Unknown flags are ignored, as go, js and rust do.
    }
  }

  #receiveData(data: Uint8Array): void {
    // After STOP_SENDING, FIN or a reset the bytes are discarded.
    if (this.#readState !== "open") return;
    // While the read half is open the queue holds `limit - desiredSize`.
    const held = this.#maxReadBuffer - (this.#readController.desiredSize ?? 0);
    if (held + data.length > this.#readLimit) {
      this.#reset(
        new StreamResetError(
          false,
          StreamErrorCode.RESOURCE_LIMIT_EXCEEDED,
          "stream reset: the read buffer is full (the app does not read)",
        ),
        true,
      );
      return;
    }
    // A byte stream takes ownership of the chunk's buffer, and `data` is a
    // view into the backend's message, so the stream gets its own copy.
    this.#readController.enqueue(data.slice());
  }

  #receiveFin(): void {
    if (this.#readState === "open") {
      this.#readState = "fin";
      this.#readController.close();
    }
    // Always acknowledge, even after STOP_SENDING or a repeated FIN.
    this.#sendFlag(Flag.FIN_ACK);
    this.#maybeFinish();
  }

  #receiveStopSending(): void {
    if (this.#writeState === "open") {
      this.#writeState = "stopped";
      this.#writeController.error(new StreamStoppedError());
      this.#wakeWriter();
      this.#maybeFinish();
    } else if (this.#writeState === "fin-sent") {
      // The peer will not acknowledge what it discards; stop waiting, as go.
      this.#endWriting("stopped");
    }
  }

  #handleChannelClose(error?: Error): void {
    if (this.#finished) return;
    if (this.#readState === "open" || this.#writeState === "open") {
      // Closing a channel is an SCTP stream reset: data in flight may be lost,
      // so without the peer's FIN this is not a clean end.
      this.#reset(
        new StreamResetError(
          true,
          undefined,
          error
            ? `stream reset: data channel error: ${error.message}`
            : "stream reset: the data channel closed before the peer's FIN",
          { cause: error },
        ),
        false,
      );
      return;
    }
    // Both halves had ended or were waiting for FIN_ACK, which the close
    // stands in for.
    if (this.#writeState === "fin-sent") this.#endWriting("closed");
    this.#finish();
  }

  #reset(error: StreamResetError, notifyPeer: boolean): void {
    if (this.#finished || this.#resetError) return;
    this.#resetError = error;
    if (notifyPeer) this.#sendFlag(Flag.RESET, error.errorCode);
    if (this.#readState === "open") {
      this.#readController.error(error);
    }
    this.#readState = "reset";
    if (this.#writeState === "open") this.#writeController.error(error);
    if (this.#writeState === "fin-sent") {
      this.#endWriting("closed", error);
    }
    this.#writeState = "reset";
    this.#wakeWriter();
    this.#finish();
  }

  #maybeFinish(): void {
    const readDone = this.#readState !== "open";
    const writeDone = this.#writeState !== "open" &&
      this.#writeState !== "fin-sent";
    if (readDone && writeDone) this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#finAckTimer);
    this.#pendingFlags = [];
    this.#channel.close();
    this.#resolveClosed();
  }
}
