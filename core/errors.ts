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
