/**
 * The stream muxer js-libp2p's upgrader installs on a p2prtc connection: one
 * data channel per stream, handed over raw, since the upgrader runs
 * multistream-select on each stream itself.
 *
 * @module
 */

import type {
  CreateStreamOptions,
  EventHandler,
  Logger,
  MessageStream,
  StreamMuxer,
  StreamMuxerFactory,
} from "@libp2p/interface";
import { AbstractStreamMuxer } from "@libp2p/utils";
import { StreamErrorCode } from "../core/errors.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";
import { DataChannelStream } from "./stream.ts";
import type { TappedPeerConnection } from "./tap.ts";

/** The muxer name js-libp2p reports for WebRTC connections, as its own. */
export const MUXER_PROTOCOL = "/webrtc";

/** Options for {@linkcode DataChannelMuxerFactory}. */
export interface DataChannelMuxerInit {
  /** The connection whose channels become streams. */
  peerConnection: TappedPeerConnection;
  /** Options for the p2prtc stream under each js-libp2p stream. */
  streamOptions?: StreamOptions;
  /** The connection's logger. */
  log: Logger;
}

/** Makes the {@linkcode StreamMuxer} of one connection, once. */
export class DataChannelMuxerFactory implements StreamMuxerFactory {
  /** {@linkcode MUXER_PROTOCOL}. */
  readonly protocol = MUXER_PROTOCOL;
  readonly #init: DataChannelMuxerInit;

  /** Makes the factory for `init.peerConnection`. */
  constructor(init: DataChannelMuxerInit) {
    this.#init = init;
  }

  /** The muxer over the connection; `maConn` only reports its closing. */
  createStreamMuxer(maConn: MessageStream): StreamMuxer {
    return new DataChannelMuxer(maConn, this.#init);
  }
}

class DataChannelMuxer extends AbstractStreamMuxer<DataChannelStream> {
  readonly #init: DataChannelMuxerInit;
  #accepting = false;

  constructor(maConn: MessageStream, init: DataChannelMuxerInit) {
    super(maConn, { protocol: MUXER_PROTOCOL, name: "muxer" });
    this.#init = init;
  }

  // Inbound streams stay with the peer connection, which bounds them by
  // resetting the extra ones, until js-libp2p listens for them: the base
  // class would instead fail the whole connection past a few.
  override addEventListener(
    type: string,
    listener: EventHandler<Event>,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
    if (type !== "stream" || this.#accepting) return;
    this.#accepting = true;
    // The listener may be added in a constructor that is not done yet.
    queueMicrotask(() =>
      this.#init.peerConnection.takeStreams((stream) => this.#accept(stream))
    );
  }

  #accept(stream: WebRTCStream): void {
    if (this.status !== "open") {
      stream.reset(StreamErrorCode.SHUTDOWN);
      return;
    }
    this.onRemoteStream(this.#wrap(stream, "inbound"));
  }

  onCreateStream(options: CreateStreamOptions): DataChannelStream {
    // Libp2p streams have the empty label; the protocol is negotiated on it.
    const channel = this.#init.peerConnection.createDataChannel("");
    return this.#wrap(
      new WebRTCStream(channel, this.#init.streamOptions),
      "outbound",
      options,
    );
  }

  onData(): void {
    // Nothing travels on the connection itself: every stream has a channel.
  }

  #wrap(
    stream: WebRTCStream,
    direction: "inbound" | "outbound",
    options: CreateStreamOptions = {},
  ): DataChannelStream {
    return new DataChannelStream(stream, {
      ...this.streamOptions,
      ...options,
      // The upgrader negotiates the protocol on the stream.
      protocol: "",
      direction,
      log: this.log.newScope(`${direction}:${stream.id}`),
    });
  }
}
