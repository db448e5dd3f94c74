/**
 * The errors p2prtc raises. Each has a stable `code`, so callers can branch on
 * it without matching messages.
 *
 * @module
 */

/** Stream error codes from the draft libp2p spec (libp2p/specs#623). */
export const StreamErrorCode = {
  /** No error given. */
  NONE: 0,
  /** The peer does not support the protocol asked for. */
  PROTOCOL_NEGOTIATION_FAILED: 0x1000,
  /** A resource limit, such as the read buffer, was exceeded. */
  RESOURCE_LIMIT_EXCEEDED: 0x1001,
  /** The peer is sending too fast. */
  RATE_LIMITED: 0x1002,
  /** The peer broke the wire protocol, for example with a malformed frame. */
  PROTOCOL_VIOLATION: 0x1003,
  /** The stream was replaced by another one. */
  SUPPLANTED: 0x1004,
  /** The stream was idle and collected. */
  GARBAGE_COLLECTED: 0x1005,
  /** The local node is shutting down. */
  SHUTDOWN: 0x1006,
  /** The connection gater refused the stream. */
  GATED: 0x1007,
} as const;

/** The base class of every error p2prtc raises. */
export class P2prtcError extends Error {
  /** A stable identifier of the kind of error, such as `ERR_STREAM_RESET`. */
  readonly code: string;

  /** Makes an error with a stable code and a message for people. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A frame is larger than the limit (16384 bytes by the spec). */
export class FrameTooLargeError extends P2prtcError {
  /** The size the frame announced, prefix included, in bytes. */
  readonly size: number;
  /** The limit in force, in bytes. */
  readonly limit: number;

  /** Makes the error for a frame of `size` bytes against `limit`. */
  constructor(size: number, limit: number) {
    super(
      "ERR_FRAME_TOO_LARGE",
      `frame of ${size} bytes exceeds the limit of ${limit} bytes`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/** Bytes on a data channel are not a valid frame. */
export class MalformedFrameError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string) {
    super("ERR_MALFORMED_FRAME", message);
  }
}

/** The stream was reset, by the peer or locally. Both halves are dead. */
export class StreamResetError extends P2prtcError {
  /** `true` when the peer reset the stream. */
  readonly remote: boolean;
  /** The error code sent with the RESET, if any (see {@linkcode StreamErrorCode}). */
  readonly errorCode: number | undefined;

  /** Makes the error for a reset by the peer (`remote`) or by us. */
  constructor(
    remote: boolean,
    errorCode?: number,
    message?: string,
    options?: ErrorOptions,
  ) {
    super(
      "ERR_STREAM_RESET",
      message ??
        `stream reset ${remote ? "by the peer" : "locally"}${
          errorCode === undefined ? "" : ` (error code ${errorCode})`
        }`,
      options,
    );
    this.remote = remote;
    this.errorCode = errorCode;
  }
}

/** The local side already closed this half of the stream. */
export class StreamClosedError extends P2prtcError {
  /** Makes the error; `message` says which half. */
  constructor(message: string) {
    super("ERR_STREAM_CLOSED", message);
  }
}

/** The peer sent STOP_SENDING: it discards anything more written to it. */
export class StreamStoppedError extends P2prtcError {
  /** Makes the error. */
  constructor() {
    super("ERR_STREAM_STOPPED", "the peer stopped reading (STOP_SENDING)");
  }
}

/** Something did not happen within its time limit. */
export class TimeoutError extends P2prtcError {
  /** Makes the error; `message` says what timed out. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_TIMEOUT", message, options);
  }
}

/** A backend was asked for something it cannot do. */
export class NotSupportedError extends P2prtcError {
  /** Makes the error; `message` says what can be used instead. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_NOT_SUPPORTED", message, options);
  }
}

/**
 * multistream-select ended without a protocol: the peer refused every one
 * proposed, or ended the stream before the two sides agreed.
 */
export class ProtocolNegotiationError extends P2prtcError {
  /**
   * The protocols refused: ours the peer answered `na` to when we opened the
   * stream, or the peer's we answered `na` to when we handled it (at most 32).
   */
  readonly protocols: readonly string[];

  /** Makes the error; `message` says how negotiation ended. */
  constructor(message: string, protocols: readonly string[] = []) {
    super("ERR_PROTOCOL_NEGOTIATION_FAILED", message);
    this.protocols = protocols;
  }
}

/**
 * The peer sent something that is not the multistream-select message due:
 * a wrong header, an answer that is neither our proposal nor `na`, a message
 * without its trailing newline, or text that is not UTF-8.
 */
export class InvalidMultistreamMessageError extends P2prtcError {
  /** Makes the error; `message` says what was wrong. */
  constructor(message: string) {
    super("ERR_INVALID_MULTISTREAM_MESSAGE", message);
  }
}

/** A multistream-select message announced more bytes than the limit. */
export class MultistreamMessageTooLargeError extends P2prtcError {
  /**
   * The length the message announced, newline included, in bytes; `Infinity`
   * when its varint prefix alone ran past the limit.
   */
  readonly size: number;
  /** The limit in force, in bytes. */
  readonly limit: number;

  /** Makes the error for a message of `size` bytes against `limit`. */
  constructor(size: number, limit: number) {
    super(
      "ERR_MULTISTREAM_MESSAGE_TOO_LARGE",
      `multistream-select message of ${size} bytes exceeds the limit of ${limit} bytes`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/**
 * A certhash is not a multibase-encoded multihash: an unknown multibase
 * prefix, characters outside its alphabet, or bytes that are not a complete
 * multihash.
 */
export class InvalidCerthashError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_INVALID_CERTHASH", message, options);
  }
}

/**
 * A certhash is a well-formed multihash, but not of a hash libp2p WebRTC can
 * use: only sha2-256 (code 0x12) with a 32-byte digest is supported.
 */
export class UnsupportedCerthashError extends P2prtcError {
  /** The multihash function code found, such as `0x13` for sha2-512. */
  readonly hashCode: number;
  /** The digest length found, in bytes. */
  readonly digestLength: number;

  /** Makes the error for a multihash with `hashCode` and `digestLength`. */
  constructor(hashCode: number, digestLength: number) {
    super(
      "ERR_UNSUPPORTED_CERTHASH",
      `certhash multihash 0x${
        hashCode.toString(16)
      } with a ${digestLength}-byte digest is not supported; only sha2-256 (0x12, 32 bytes) is`,
    );
    this.hashCode = hashCode;
    this.digestLength = digestLength;
  }
}

/**
 * A certificate fingerprint is malformed (not 32 colon-separated hex bytes,
 * or a digest that is not 32 bytes) or uses an algorithm other than sha-256.
 */
export class InvalidFingerprintError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_INVALID_FINGERPRINT", message, options);
  }
}

/**
 * An ICE ufrag or password breaks the RFC 8839 grammar: ufrag 4–256 and
 * password 22–256 characters from `[A-Za-z0-9+/]`. Values are checked before
 * they reach SDP, so CR, LF and anything else outside the grammar end here.
 */
export class InvalidIceCredentialError extends P2prtcError {
  /** Which credential is wrong. */
  readonly credential: "ufrag" | "pwd";

  /** Makes the error for the `credential` that is wrong. */
  constructor(credential: "ufrag" | "pwd", message: string) {
    super("ERR_INVALID_ICE_CREDENTIAL", message);
    this.credential = credential;
  }
}

/**
 * The USERNAME of a STUN Binding request a WebRTC-Direct listener received
 * cannot start a connection. `reason` tells why, for counting rejections:
 * - `"format"`: not a string of the shape `server_ufrag:client_ufrag`;
 * - `"server-ufrag"` / `"client-ufrag"`: that half is not a valid ICE ufrag;
 * - `"version"`: the server ufrag has no known `libp2p+webrtc+vN/` prefix;
 * - `"client-pwd"`: the password the version implies is not a valid ICE
 *   password.
 */
export class InvalidStunUsernameError extends P2prtcError {
  /** Why the USERNAME was rejected. */
  readonly reason:
    | "format"
    | "server-ufrag"
    | "client-ufrag"
    | "version"
    | "client-pwd";

  /** Makes the error for `reason`; `message` gives the detail. */
  constructor(
    reason: InvalidStunUsernameError["reason"],
    message: string,
    options?: ErrorOptions,
  ) {
    super("ERR_INVALID_STUN_USERNAME", message, options);
    this.reason = reason;
  }
}

/**
 * An SDP cannot be built or read: a value meant for it is not valid there
 * (an address that is not an IP literal, a port out of range), or an
 * attribute the caller needs is missing.
 */
export class InvalidSdpError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_INVALID_SDP", message, options);
  }
}

/**
 * A multiaddr is not a usable WebRTC-Direct address:
 * `/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<mb-mh>[/p2p/<peer id>]`.
 */
export class InvalidMultiaddrError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_INVALID_MULTIADDR", message, options);
  }
}

/**
 * A WebRTC-Direct multiaddr names its host with `dns`, `dns4`, `dns6` or
 * `dnsaddr`. The synthetic SDP answer needs an IP literal, so resolve the
 * name first and pass the resolved `/ip4` or `/ip6` addresses.
 */
export class UnresolvedMultiaddrError extends P2prtcError {
  /** Makes the error; `message` names the address. */
  constructor(message: string) {
    super("ERR_MULTIADDR_NOT_RESOLVED", message);
  }
}

/**
 * A libp2p private key could not be read: the bytes are not a libp2p
 * `PrivateKey` protobuf of a supported key type (Ed25519, secp256k1, ECDSA,
 * RSA). When it came from a file, `path` names it; delete or restore the
 * file, since a new key would give the node a new peer ID.
 */
export class InvalidPrivateKeyError extends P2prtcError {
  /** The file the key was read from, if it came from one. */
  readonly path: string | undefined;

  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, path?: string, options?: ErrorOptions) {
    super("ERR_INVALID_PRIVATE_KEY", message, options);
    this.path = path;
  }
}

/**
 * The peer proved a different identity than the one expected, such as the
 * `/p2p/<peer id>` of the multiaddr dialled.
 */
export class PeerIdMismatchError extends P2prtcError {
  /** The peer ID expected, as text. */
  readonly expected: string;
  /** The peer ID the peer authenticated as, as text. */
  readonly actual: string;

  /** Makes the error for the `expected` and `actual` peer IDs. */
  constructor(expected: string, actual: string) {
    super(
      "ERR_PEER_ID_MISMATCH",
      `the peer authenticated as ${actual}, not the expected ${expected}`,
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * The Noise handshake failed: a message did not decrypt or verify (as when
 * the two prologues differ, the sign of a DTLS man-in-the-middle), the peer
 * sent something that is not a Noise message, or the handshake channel
 * closed or was reset. The underlying error is the `cause`.
 */
export class NoiseHandshakeError extends P2prtcError {
  /** Makes the error; `message` says what failed. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_NOISE_HANDSHAKE_FAILED", message, options);
  }
}

/** A connection could not be established: ICE, DTLS or SCTP failed. */
export class ConnectionFailedError extends P2prtcError {
  /** Makes the error; `message` says at which step. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_CONNECTION_FAILED", message, options);
  }
}

/** A WebRTC-Direct listener could not bind its UDP port. */
export class ListenFailedError extends P2prtcError {
  /** Makes the error. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_LISTEN_FAILED", message, options);
  }
}

/**
 * A signalling exchange was aborted: by this side, by the peer, or because
 * the channel under it failed (a reset relay stream, say). The underlying
 * reason, when there is one, is the `cause`.
 */
export class SignalingAbortedError extends P2prtcError {
  /** Makes the error, keeping the abort reason as `cause`. */
  constructor(reason?: unknown) {
    super("ERR_SIGNALING_ABORTED", "the signalling channel was aborted", {
      cause: reason,
    });
  }
}

/** A signalling message is larger than the limit in force. */
export class SignalingMessageTooLargeError extends P2prtcError {
  /**
   * The size of the message in bytes, length prefix not counted; `Infinity`
   * when its length prefix alone ran past the limit.
   */
  readonly size: number;
  /** The limit in force, in bytes. */
  readonly limit: number;

  /** Makes the error for a message of `size` bytes against `limit`. */
  constructor(size: number, limit: number) {
    super(
      "ERR_SIGNALING_MESSAGE_TOO_LARGE",
      `signalling message of ${size} bytes exceeds the limit of ${limit} bytes`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/**
 * Bytes on a signalling channel are not a signalling message: not protobuf,
 * an unknown type, an SDP without its text, a candidate that is not the JSON
 * of an `RTCIceCandidateInit`, or a stream that ends inside a message.
 */
export class MalformedSignalingMessageError extends P2prtcError {
  /** Makes the error; `message` says what is wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_SIGNALING_MALFORMED", message, options);
  }
}
