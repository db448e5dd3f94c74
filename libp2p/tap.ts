/**
 * Raw data channels for js-libp2p's muxer, taken from the peer connections
 * that the core's dialers and listeners make.
 *
 * The core hands out a `WebRTCConnection`, whose inbound channels go through
 * multistream-select before a handler sees them. Inside js-libp2p the
 * upgrader runs multistream-select itself, so its muxer needs the channels
 * as they come. {@linkcode tapBackend} wraps a backend so that every peer
 * connection it creates is a {@linkcode TappedPeerConnection}: the same
 * connection, except that inbound channels are wrapped in a
 * {@linkcode WebRTCStream} at once and held for the muxer instead of going
 * to the core. The core keeps what it does well: ICE, DTLS, Noise, the
 * offer/answer flow, and closing everything together.
 *
 * @module
 */

import type {
  DataChannel,
  DataChannelInit,
  IceCandidate,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
  PeerConnectionState,
  SessionDescription,
} from "../core/backend.ts";
import { StreamErrorCode } from "../core/errors.ts";
import { INIT_CHANNEL_LABEL } from "../core/negotiation.ts";
import { type StreamOptions, WebRTCStream } from "../core/stream.ts";

/** Options for {@linkcode tapBackend}. */
export interface TapOptions {
  /** Options for the streams made from inbound channels. */
  streamOptions?: StreamOptions;
  /**
   * Inbound streams held until the muxer takes them; more are reset with
   * `RESOURCE_LIMIT_EXCEEDED`. Default 10, as js-libp2p.
   */
  maxEarlyStreams?: number;
}

/**
 * The tap options of a transport: its stream options, with a read bound of
 * 16 MiB unless they set one, and its early-stream limit. The p2prtc stream
 * under a js-libp2p stream only holds what the WebRTC stack delivers in one
 * burst before the adapter moves it on; js-libp2p's own stream then bounds
 * what nobody reads (4 MiB by default). p2prtc's usual 4 MiB would reset
 * streams whenever the event loop falls behind a fast sender.
 */
export function tapOptionsOf(
  init: { streamOptions?: StreamOptions; maxEarlyStreams?: number },
): TapOptions {
  return {
    streamOptions: {
      maxReadBufferSize: 16 * 1024 * 1024,
      ...init.streamOptions,
    },
    maxEarlyStreams: init.maxEarlyStreams,
  };
}

/**
 * A {@linkcode PeerConnection} whose inbound data channels go to
 * {@linkcode TappedPeerConnection.takeStreams} rather than to
 * `ondatachannel`. Everything else passes through.
 */
export class TappedPeerConnection implements PeerConnection {
  /**
   * Kept for the code that sets it, never called: inbound channels belong
   * to the muxer.
   */
  ondatachannel: ((channel: DataChannel) => void) | null = null;
  /** Resolves once the connection has closed or failed. Never rejects. */
  readonly closed: Promise<void>;

  readonly #pc: PeerConnection;
  readonly #streamOptions: StreamOptions | undefined;
  readonly #maxEarly: number;
  #early: WebRTCStream[] = [];
  #sink: ((stream: WebRTCStream) => void) | undefined;
  #onState: ((state: PeerConnectionState) => void) | null = null;
  #isClosed = false;
  #resolveClosed!: () => void;

  /** Takes over `pc`'s `ondatachannel` and `onconnectionstatechange`. */
  constructor(pc: PeerConnection, options: TapOptions = {}) {
    this.#pc = pc;
    this.#streamOptions = options.streamOptions;
    this.#maxEarly = options.maxEarlyStreams ?? 10;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    pc.ondatachannel = (channel) => this.#accept(channel);
    pc.onconnectionstatechange = (state) => {
      if (state === "failed" || state === "closed") this.#markClosed();
      this.#onState?.(state);
    };
  }

  /**
   * Hands every inbound stream to `sink`, those that came before first.
   * Called once, by the muxer.
   */
  takeStreams(sink: (stream: WebRTCStream) => void): void {
    this.#sink = sink;
    const early = this.#early;
    this.#early = [];
    for (const stream of early) sink(stream);
  }

  /**
   * The address the remote description puts the peer at, `host port`: its
   * connection line and its m-line's port. A WebRTC-Direct listener writes
   * there the address of the dialer's first STUN request.
   */
  remoteSdpAddress(): string | undefined {
    const sdp = this.#pc.remoteDescription?.sdp ?? "";
    const host = /^c=IN IP[46] (\S+)\r?$/m.exec(sdp)?.[1];
    const port = /^m=application (\d+) /m.exec(sdp)?.[1];
    return host && port ? `${host} ${port}` : undefined;
  }

  /** Whether the connection has closed or failed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  get connectionState(): PeerConnectionState {
    return this.#pc.connectionState;
  }

  get localDescription(): SessionDescription | null {
    return this.#pc.localDescription;
  }

  get remoteDescription(): SessionDescription | null {
    return this.#pc.remoteDescription;
  }

  get onicecandidate(): ((candidate: IceCandidate | null) => void) | null {
    return this.#pc.onicecandidate;
  }

  set onicecandidate(
    handler: ((candidate: IceCandidate | null) => void) | null,
  ) {
    this.#pc.onicecandidate = handler;
  }

  get onconnectionstatechange():
    | ((state: PeerConnectionState) => void)
    | null {
    return this.#onState;
  }

  set onconnectionstatechange(
    handler: ((state: PeerConnectionState) => void) | null,
  ) {
    this.#onState = handler;
  }

  createDataChannel(label: string, init?: DataChannelInit): DataChannel {
    return this.#pc.createDataChannel(label, init);
  }

  createOffer(): Promise<SessionDescription> {
    return this.#pc.createOffer();
  }

  createAnswer(): Promise<SessionDescription> {
    return this.#pc.createAnswer();
  }

  setLocalDescription(
    ...args: Parameters<PeerConnection["setLocalDescription"]>
  ): Promise<void> {
    return this.#pc.setLocalDescription(...args);
  }

  setRemoteDescription(description: SessionDescription): Promise<void> {
    return this.#pc.setRemoteDescription(description);
  }

  addIceCandidate(candidate: IceCandidate): Promise<void> {
    return this.#pc.addIceCandidate(candidate);
  }

  localFingerprint(): ReturnType<PeerConnection["localFingerprint"]> {
    return this.#pc.localFingerprint();
  }

  remoteFingerprint(): ReturnType<PeerConnection["remoteFingerprint"]> {
    return this.#pc.remoteFingerprint();
  }

  close(): void {
    this.#markClosed();
    this.#pc.close();
  }

  #markClosed(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    // Closing the peer connection closes their channels; the streams end
    // with it.
    this.#early = [];
    this.#resolveClosed();
  }

  #accept(channel: DataChannel): void {
    if (this.#isClosed) {
      channel.close();
      return;
    }
    // The /webrtc offerer's `init` channel only carried the negotiation; the
    // offerer closes it once it is open. Closing it from here as well races
    // that: js-libp2p waits for its `open` event and then for `close`, and a
    // close that comes with the open (both in one batch of native callbacks)
    // leaves it waiting until its dial times out. It closes with the
    // connection if the offerer never does.
    if (channel.label === INIT_CHANNEL_LABEL) return;
    // Wrapped at once, so nothing that arrives before the muxer is lost; the
    // stream bounds what it holds.
    const stream = new WebRTCStream(channel, this.#streamOptions);
    if (this.#sink) {
      this.#sink(stream);
    } else if (this.#early.length >= this.#maxEarly) {
      stream.reset(StreamErrorCode.RESOURCE_LIMIT_EXCEEDED);
    } else {
      this.#early.push(stream);
    }
  }
}

/**
 * `backend`, except that each peer connection it creates is a
 * {@linkcode TappedPeerConnection}, passed to `onTap` as it is made.
 */
export function tapBackend(
  backend: PeerConnectionBackend,
  onTap: (tap: TappedPeerConnection) => void,
  options: TapOptions = {},
): PeerConnectionBackend {
  const tapped: PeerConnectionBackend = {
    name: backend.name,
    capabilities: backend.capabilities,
    openHandles: () => backend.openHandles(),
    createPeerConnection(init?: PeerConnectionOptions): PeerConnection {
      const tap = new TappedPeerConnection(
        backend.createPeerConnection(init),
        options,
      );
      onTap(tap);
      return tap;
    },
  };
  if (backend.idle) tapped.idle = (signal) => backend.idle!(signal);
  if (backend.listenDirect) {
    tapped.listenDirect = (listen) => backend.listenDirect!(listen);
  }
  return tapped;
}
