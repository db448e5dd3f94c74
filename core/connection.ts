/**
 * One libp2p connection over one peer connection: streams opened with
 * multistream-select on new data channels, inbound streams dispatched to
 * per-protocol handlers, and everything closed together.
 *
 * There is no security or muxer negotiation on the connection itself: the
 * peer connection is the muxer, and WebRTC-Direct authenticates with Noise on
 * channel 0 before the connection is handed out (`direct_dial.ts`).
 *
 * @module
 */

import type { PeerId } from "./identity.ts";
import type { DataChannel, PeerConnection } from "./backend.ts";
import { P2prtcError, StreamErrorCode } from "./errors.ts";
import {
  handle as handleProtocol,
  type MultistreamOptions,
  type NegotiatedStream,
  select,
  selectLazy,
} from "./multistream.ts";
import { INIT_CHANNEL_LABEL } from "./negotiation.ts";
import { type StreamOptions, WebRTCStream } from "./stream.ts";

/** Handles one inbound stream negotiated for a protocol. */
export type StreamHandler = (
  stream: NegotiatedStream,
  connection: WebRTCConnection,
) => void | Promise<void>;

/** Options for {@linkcode WebRTCConnection}. */
export interface ConnectionOptions {
  /** The peer's address, as a multiaddr string. */
  remoteAddr: string;
  /** Whether we dialled (`outbound`) or accepted (`inbound`). */
  direction: "inbound" | "outbound";
  /** Options for every stream of the connection. */
  streamOptions?: StreamOptions;
  /**
   * Inbound streams that may be negotiating or waiting for the connection to
   * be ready at once; more are reset with `RESOURCE_LIMIT_EXCEEDED`.
   * Default 256, as go's accept queue.
   */
  maxPendingInboundStreams?: number;
  /**
   * Inbound streams held before {@linkcode WebRTCConnection.ready}, while
   * the peer is not yet authenticated; more are reset with
   * `RESOURCE_LIMIT_EXCEEDED`. Default 16.
   */
  maxEarlyStreams?: number;
  /**
   * The read bound of each stream held before
   * {@linkcode WebRTCConnection.ready}, in bytes; it becomes
   * `maxReadBufferSize` once the peer is authenticated. With
   * `maxEarlyStreams` it caps what an unauthenticated peer can make the
   * connection hold. Default 1 MiB.
   */
  maxEarlyReadBufferSize?: number;
  /** The time limit of each inbound negotiation, in ms. Default 10 000. */
  negotiationTimeout?: number;
  /** Called once, when the connection has closed. */
  onClose?: (connection: WebRTCConnection) => void;
  /**
   * Handlers in place from the start, so that streams the peer opens as soon
   * as it is connected (identify, say) find them.
   */
  handlers?: ReadonlyMap<string, StreamHandler>;
}

/** Options for {@linkcode WebRTCConnection.newStream}. */
export interface NewStreamOptions {
  /** Aborts the negotiation; the stream is then reset. */
  signal?: AbortSignal;
  /** The negotiation time limit, in ms. Default 10 000. */
  timeout?: number;
  /**
   * Negotiate lazily: the proposal goes out at once and the application may
   * write straight behind it, in the channel's first messages, without
   * waiting a round trip for the peer's answer (`selectLazy`). Only for a
   * peer known to speak the protocol, which must then be the only one
   * given. Default `false`.
   */
  lazy?: boolean;
}

/** The connection is closed; nothing more can be done on it. */
export class ConnectionClosedError extends P2prtcError {
  /** Makes the error. */
  constructor(message = "the connection is closed") {
    super("ERR_CONNECTION_CLOSED", message);
  }
}

/**
 * A libp2p connection over a {@linkcode PeerConnection}. Created by the
 * dialer and the listener; {@linkcode WebRTCConnection.ready} lets inbound
 * streams through once the peer is authenticated.
 */
export class WebRTCConnection implements AsyncDisposable {
  /** The authenticated peer, set by {@linkcode WebRTCConnection.ready}. */
  remotePeer!: PeerId;
  /** The peer's address. */
  readonly remoteAddr: string;
  /** Whether we dialled or accepted the connection. */
  readonly direction: "inbound" | "outbound";
  /** Resolves once the connection has closed. Never rejects. */
  readonly closed: Promise<void>;

  readonly #pc: PeerConnection;
  readonly #options: ConnectionOptions;
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #streams = new Set<WebRTCStream>();
  /** Inbound streams that arrived before {@linkcode ready}. */
  #early: WebRTCStream[] = [];
  #pendingInbound = 0;
  #ready = false;
  #isClosed = false;
  #resolveClosed!: () => void;

  /**
   * Takes over `pc`'s `ondatachannel` and `onconnectionstatechange`. Create
   * it before the peer can open channels, so none is missed.
   */
  constructor(pc: PeerConnection, options: ConnectionOptions) {
    this.#pc = pc;
    this.#options = options;
    this.remoteAddr = options.remoteAddr;
    this.direction = options.direction;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    for (const [protocol, handler] of options.handlers ?? []) {
      this.#handlers.set(protocol, handler);
    }
    pc.ondatachannel = (channel) => this.#accept(channel);
    pc.onconnectionstatechange = (state) => {
      // `disconnected` is transient (ICE may recover); only these are ends.
      if (state === "failed" || state === "closed") this.close();
    };
  }

  /** The streams open now. */
  get streams(): ReadonlySet<WebRTCStream> {
    return this.#streams;
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** The protocols with a handler. */
  get protocols(): string[] {
    return [...this.#handlers.keys()];
  }

  /**
   * Records the authenticated peer and lets inbound streams through to their
   * handlers, the early ones first. Called once, by the dialer or listener.
   */
  ready(remotePeer: PeerId): void {
    if (this.#ready) return;
    this.remotePeer = remotePeer;
    this.#ready = true;
    const early = this.#early;
    this.#early = [];
    for (const stream of early) {
      stream.limitReadBuffer(Infinity);
      this.#negotiateInbound(stream);
    }
  }

  /** Sets the handler for inbound streams of `protocol`. */
  handle(protocol: string, handler: StreamHandler): void {
    this.#handlers.set(protocol, handler);
  }

  /** Removes the handler for `protocol`. */
  unhandle(protocol: string): void {
    this.#handlers.delete(protocol);
  }

  /**
   * Opens a stream and negotiates the first of `protocols` the peer speaks.
   *
   * @throws {ConnectionClosedError} if the connection is closed.
   * @throws {import("./errors.ts").ProtocolNegotiationError} if the peer
   * speaks none of them (with `lazy`, the stream's `confirmed` and readable
   * reject with it instead).
   * @throws {TypeError} for an invalid protocol id, or `lazy` with more than
   * one protocol.
   */
  async newStream(
    protocols: string | string[],
    options: NewStreamOptions = {},
  ): Promise<NegotiatedStream> {
    if (this.#isClosed) throw new ConnectionClosedError();
    const list = typeof protocols === "string" ? [protocols] : protocols;
    if (options.lazy && list.length !== 1) {
      throw new TypeError("a lazy negotiation proposes exactly one protocol");
    }
    const stream = this.#track(
      new WebRTCStream(
        this.#pc.createDataChannel(""),
        this.#options.streamOptions,
      ),
    );
    const negotiation = { signal: options.signal, timeout: options.timeout };
    try {
      if (options.lazy) return selectLazy(stream, list[0], negotiation);
      return await select(stream, list, negotiation);
    } catch (error) {
      // A bad protocol id fails before negotiation could reset the channel.
      stream.reset();
      throw error;
    }
  }

  /**
   * Closes the peer connection: every stream ends at once with a reset (no
   * close reason reaches the peer; WebRTC has no way to send one).
   * Idempotent.
   */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const stream of this.#early) stream.reset(StreamErrorCode.SHUTDOWN);
    this.#early = [];
    this.#pc.close();
    this.#resolveClosed();
    this.#options.onClose?.(this);
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.closed;
  }

  #track(stream: WebRTCStream): WebRTCStream {
    this.#streams.add(stream);
    stream.closed.then(() => this.#streams.delete(stream));
    return stream;
  }

  #accept(channel: DataChannel): void {
    // The /webrtc offerer's `init` channel only carried the negotiation.
    if (channel.label === INIT_CHANNEL_LABEL || this.#isClosed) {
      channel.close();
      return;
    }
    // Wrap at once: the stream keeps what arrives (within its read bound)
    // while negotiation or the handshake is still under way.
    const stream = this.#track(
      new WebRTCStream(channel, this.#options.streamOptions),
    );
    const limit = this.#options.maxPendingInboundStreams ?? 256;
    const earlyLimit = this.#options.maxEarlyStreams ?? 16;
    if (
      this.#pendingInbound >= limit ||
      (!this.#ready && this.#early.length >= earlyLimit)
    ) {
      stream.reset(StreamErrorCode.RESOURCE_LIMIT_EXCEEDED);
      return;
    }
    this.#pendingInbound++;
    if (this.#ready) {
      this.#negotiateInbound(stream);
    } else {
      stream.limitReadBuffer(
        this.#options.maxEarlyReadBufferSize ?? 1024 * 1024,
      );
      this.#early.push(stream);
    }
  }

  async #negotiateInbound(stream: WebRTCStream): Promise<void> {
    let negotiated: NegotiatedStream;
    try {
      const options: MultistreamOptions = {
        timeout: this.#options.negotiationTimeout,
      };
      negotiated = await handleProtocol(
        stream,
        (id) => this.#handlers.has(id),
        options,
      );
    } catch {
      // handle() has reset the stream with the reason.
      return;
    } finally {
      this.#pendingInbound--;
    }
    const handler = this.#handlers.get(negotiated.protocol);
    try {
      await handler!(negotiated, this);
    } catch {
      negotiated.reset();
    }
  }
}
