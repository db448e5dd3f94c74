/**
 * The seam between the core and a WebRTC stack.
 *
 * The core needs a small subset of the W3C `RTCPeerConnection` and
 * `RTCDataChannel` API. It is written down here, with no implementation and no
 * type from any WebRTC library, so that a browser backend is nearly a
 * pass-through and the native and pure-TypeScript backends are adapters.
 *
 * Handlers are plain callback properties rather than `EventTarget` listeners:
 * the core is their only user, and a callback per message costs no `Event`
 * allocation on the data path.
 *
 * @module
 */

/** The state of a data channel, as in `RTCDataChannel.readyState`. */
export type DataChannelState = "connecting" | "open" | "closing" | "closed";

/** The state of a peer connection, as in `RTCPeerConnection.connectionState`. */
export type PeerConnectionState =
  | "new"
  | "connecting"
  | "connected"
  | "disconnected"
  | "failed"
  | "closed";

/**
 * One SCTP data channel: reliable, ordered, binary messages.
 *
 * A backend calls the handlers in the order the events happened, never
 * re-entrantly from inside {@linkcode DataChannel.send} or
 * {@linkcode DataChannel.close}, and after `onclose` it calls none of them
 * again.
 */
export interface DataChannel {
  /** The SCTP stream id, or `null` until the stack has assigned one. */
  readonly id: number | null;
  /** The label the opener gave; libp2p streams use `""`. */
  readonly label: string;
  /** The current state. */
  readonly readyState: DataChannelState;
  /** Bytes handed to {@linkcode DataChannel.send} and not yet sent. */
  readonly bufferedAmount: number;
  /**
   * `onbufferedamountlow` fires when {@linkcode DataChannel.bufferedAmount}
   * falls from above this value to at or below it.
   */
  bufferedAmountLowThreshold: number;

  /**
   * Queues one binary message.
   *
   * The backend copies `data` (or sends it) before returning, so the caller
   * may reuse the buffer at once. It throws if the channel is not open.
   */
  send(data: Uint8Array): void;
  /** Starts closing the channel; `onclose` follows. Idempotent. */
  close(): void;

  /** The channel became `open`. */
  onopen: (() => void) | null;
  /**
   * One message arrived. Text messages are passed as their UTF-8 bytes. The
   * view may be reused by the backend after the handler returns, so keep a
   * copy of anything needed later.
   */
  onmessage: ((data: Uint8Array) => void) | null;
  /** {@linkcode DataChannel.bufferedAmount} fell to the low threshold. */
  onbufferedamountlow: (() => void) | null;
  /** The channel is closed, by either side or with its peer connection. */
  onclose: (() => void) | null;
  /** The stack reported an error on the channel. `onclose` follows. */
  onerror: ((error: Error) => void) | null;
}

/** Options for {@linkcode PeerConnection.createDataChannel}. */
export interface DataChannelInit {
  /**
   * `true` for a channel both sides create with the same id and no in-band
   * open message (the Noise channel, id 0). Streams use `false`.
   */
  negotiated?: boolean;
  /** The SCTP stream id of a negotiated channel. */
  id?: number;
}

/** An SDP offer or answer. */
export interface SessionDescription {
  /** Whether this is the offer or the answer. */
  type: "offer" | "answer";
  /** The SDP text. */
  sdp: string;
}

/** A trickled ICE candidate, shaped like `RTCIceCandidateInit`. */
export interface IceCandidate {
  /** The `candidate:...` attribute value; `""` marks the end of candidates. */
  candidate: string;
  /** The media stream id the candidate belongs to. */
  sdpMid?: string | null;
  /** The index of the m-line the candidate belongs to. */
  sdpMLineIndex?: number | null;
  /** The ICE ufrag the candidate was gathered for. */
  usernameFragment?: string | null;
}

/** A STUN or TURN server. Nothing is contacted unless one is configured. */
export interface IceServer {
  /** One or more `stun:` or `turn:` URLs. */
  urls: string | string[];
  /** The TURN user name. */
  username?: string;
  /** The TURN password. */
  credential?: string;
}

/** A DTLS certificate and its private key, PEM-encoded. */
export interface CertificatePem {
  /** The X.509 certificate, `-----BEGIN CERTIFICATE-----`. */
  certificate: string;
  /** The PKCS#8 private key, `-----BEGIN PRIVATE KEY-----`. */
  privateKey: string;
}

/** A DTLS certificate fingerprint. Only sha-256 is used by libp2p. */
export interface CertificateFingerprint {
  /** The hash algorithm, as named in SDP `a=fingerprint`. */
  algorithm: "sha-256";
  /** The digest of the DER certificate. */
  digest: Uint8Array;
}

/** Local ICE credentials, which a WebRTC-Direct dialer sets to its ufrag. */
export interface IceCredentials {
  /** The ICE username fragment. */
  ufrag: string;
  /** The ICE password. */
  pwd: string;
}

/** Options for {@linkcode PeerConnectionBackend.createPeerConnection}. */
export interface PeerConnectionOptions {
  /** STUN and TURN servers. Default: none. */
  iceServers?: IceServer[];
  /**
   * The local address ICE gathers host candidates on, for example
   * `"127.0.0.1"`. Default: every interface the stack chooses.
   */
  bindAddress?: string;
  /** The DTLS certificate. Default: a fresh ECDSA P-256 one. */
  certificate?: CertificatePem;
  /**
   * WebRTC-Direct listening: the UDP port of a
   * {@linkcode DirectUdpListener} this connection's ICE agent shares
   * instead of binding a port of its own. Only for backends whose
   * `capabilities.directListen` is `true`.
   */
  iceUdpMuxPort?: number;
  /**
   * Accept any DTLS certificate from the peer instead of checking it against
   * the remote description's `a=fingerprint`. A WebRTC-Direct listener needs
   * this: it cannot know the dialer's certificate, and authenticates the
   * dialer in Noise, with the fingerprint seen in DTLS bound into the
   * prologue. Default `false`.
   */
  disableFingerprintVerification?: boolean;
}

/**
 * The first STUN Binding request of an ICE session a
 * {@linkcode DirectUdpListener} does not know yet. Nothing in it has been
 * validated: the USERNAME halves come from the network.
 */
export interface StunRequest {
  /** The USERNAME's half before the first `:`, the listener's ufrag. */
  serverUfrag: string;
  /** The USERNAME's half after the first `:`, the dialer's ufrag. */
  clientUfrag: string;
  /** The source IP of the request. */
  remoteHost: string;
  /** The source UDP port of the request. */
  remotePort: number;
}

/** Options for {@linkcode PeerConnectionBackend.listenDirect}. */
export interface DirectListenOptions {
  /** The local IP literal to bind, for example `"127.0.0.1"`. */
  host: string;
  /** The UDP port to bind; `0` picks a free one. */
  port: number;
  /**
   * Called for every Binding request whose server ufrag belongs to no peer
   * connection yet (retransmissions included), in a task of its own.
   */
  onStunRequest(request: StunRequest): void;
}

/**
 * A bound UDP port that demultiplexes ICE traffic by server ufrag: to the
 * peer connection created with `iceUdpMuxPort` and that local ufrag, or to
 * `onStunRequest` when there is none yet.
 */
export interface DirectUdpListener {
  /** The bound IP. */
  readonly host: string;
  /** The bound UDP port, never `0`. */
  readonly port: number;
  /**
   * Stops reporting requests at once. The port is released then, or (the
   * backend's choice, documented by it) once the last peer connection
   * sharing it has closed. Idempotent.
   */
  close(): void;
}

/**
 * One WebRTC peer connection: ICE, DTLS and an SCTP association carrying data
 * channels.
 */
export interface PeerConnection {
  /** The current state. */
  readonly connectionState: PeerConnectionState;
  /** The applied local description, or `null` before one is set. */
  readonly localDescription: SessionDescription | null;
  /** The applied remote description, or `null` before one is set. */
  readonly remoteDescription: SessionDescription | null;

  /** Creates a data channel. Streams use label `""` and no options. */
  createDataChannel(label: string, init?: DataChannelInit): DataChannel;
  /** Creates an offer without applying it. */
  createOffer(): Promise<SessionDescription>;
  /** Creates an answer to the applied remote offer without applying it. */
  createAnswer(): Promise<SessionDescription>;
  /**
   * Applies a local description. With `credentials`, the description's ICE
   * ufrag and password are replaced by them first (WebRTC-Direct dialing).
   */
  setLocalDescription(
    description: SessionDescription,
    credentials?: IceCredentials,
  ): Promise<void>;
  /** Applies the remote description. */
  setRemoteDescription(description: SessionDescription): Promise<void>;
  /**
   * Adds a remote candidate. Candidates that arrive before the remote
   * description are held and added once it is applied, so callers need not
   * order them. An empty `candidate` string marks the end of candidates.
   */
  addIceCandidate(candidate: IceCandidate): Promise<void>;
  /** The fingerprint of the local DTLS certificate. */
  localFingerprint(): Promise<CertificateFingerprint>;
  /**
   * The fingerprint of the certificate the peer presented in DTLS, or `null`
   * before DTLS has finished.
   */
  remoteFingerprint(): CertificateFingerprint | null;
  /** Closes the connection and all its channels. Idempotent. */
  close(): void;

  /** The peer opened a data channel. */
  ondatachannel: ((channel: DataChannel) => void) | null;
  /** A local candidate was gathered; `null` when gathering is complete. */
  onicecandidate: ((candidate: IceCandidate | null) => void) | null;
  /** {@linkcode PeerConnection.connectionState} changed. */
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null;
}

/** Open native handles a backend owns, which Deno's sanitizers cannot see. */
export interface HandleCount {
  /** Peer connections created and not yet closed. */
  peerConnections: number;
  /** Data channels created or accepted and not yet closed. */
  dataChannels: number;
  /**
   * WebRTC-Direct UDP listeners not yet closed. Backends may leave it out
   * while it is `0`.
   */
  udpListeners?: number;
}

/** What a backend can do, so callers can choose before they try. */
export interface BackendCapabilities {
  /** It can dial WebRTC-Direct addresses (it can set its ICE credentials). */
  directDial: boolean;
  /** It can listen on WebRTC-Direct (ICE-lite, a shared UDP port). */
  directListen: boolean;
}

/**
 * A WebRTC stack. A user passes one to the transport; the core never imports
 * one.
 */
export interface PeerConnectionBackend {
  /** A short name for logs and benchmarks, for example `"libdatachannel"`. */
  readonly name: string;
  /** What this backend can do. */
  readonly capabilities: BackendCapabilities;
  /** Creates a peer connection. */
  createPeerConnection(options?: PeerConnectionOptions): PeerConnection;
  /** The handles this backend has open now. */
  openHandles(): HandleCount;
  /**
   * Resolves once everything this backend made has stopped, native timers
   * and handles included, so that a program or a test can end cleanly.
   * Rejects with the signal's reason if it aborts first.
   */
  idle?(signal?: AbortSignal): Promise<void>;
  /**
   * Binds a WebRTC-Direct UDP port (see {@linkcode DirectUdpListener}).
   * Present exactly when `capabilities.directListen` is `true`; the core
   * raises `NotSupportedError` otherwise.
   */
  listenDirect?(options: DirectListenOptions): Promise<DirectUdpListener>;
}
