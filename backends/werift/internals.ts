/**
 * The parts of werift this adapter reaches past werift's public typings for,
 * written down as the smallest structural types that fit. Every one of them
 * is a plain field or method in werift 0.25.2, whose version the import map
 * pins; each use says why werift's public API was not enough.
 *
 * Internal to the werift backend.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { RTCCertificate, RTCDataChannel } from "werift";

/** werift's small event emitter (`Event` in its common package). */
export interface WeriftEvent<T extends unknown[]> {
  /** Adds a listener; werift calls it synchronously from `execute`. */
  subscribe(listener: (...args: T) => void): { unSubscribe(): void };
}

/** werift's ICE agent (`RTCIceTransport.connection`). */
export interface IceAgent {
  /** The local ufrag werift announces and answers checks for. */
  localUsername: string;
  /** The local password. */
  localPassword: string;
  /** ufrag → password, consulted when answering a connectivity check. */
  userHistory: Record<string, string>;
  /** Defaults to a public Google server when no STUN server is configured. */
  stunServer?: unknown;
}

/** werift's DTLS socket (`RTCDtlsTransport.dtls`). */
export interface DtlsSocket {
  /** Sends one application-data record. */
  send(data: Buffer): Promise<void>;
  /** Encrypts each record `send` builds, just before it goes out. */
  cipher: {
    /** Encrypts in place; the record type is part of the AEAD input. */
    encryptPacket(
      packet: { recordLayerHeader: { contentType: number } },
    ): unknown;
  };
  /** The handshake state; a retransmit loop ends once `flight` passes its own. */
  dtls: { flight: number };
  /** Every record the socket sends, handshake flights included, goes through `send`. */
  transport: { send: (data: Uint8Array, address?: unknown) => unknown };
  /** The peer's DER certificate, once the handshake has received it. */
  readonly remoteCertificate?: Uint8Array;
}

/** werift's check of the peer's certificate against the remote description (`RTCDtlsTransport`). */
export interface FingerprintCheck {
  /** Throws unless the certificate DTLS received matches `a=fingerprint`. */
  verifyRemoteCertificateFingerprint(): void;
}

/** werift's SCTP association (`RTCSctpTransport.sctp`). */
export interface SctpAssociation {
  /** The RFC 4960 state, in werift's numbering ({@linkcode SCTP_ESTABLISHED}). */
  associationState: number;
  /** Set by `start()`, which werift calls once DTLS is up. */
  started: boolean;
  /** Answers INIT (`true`) or sends it (`false`); `true` until `start()`. */
  isServer: boolean;
  /** The streams the association may send on: ids below this. */
  _outboundStreamsCount: number;
  /** Connection-state events. */
  stateChanged: { closed: WeriftEvent<[]>; connecting: WeriftEvent<[]> };
  /** Every message received: stream id, payload protocol id, payload. */
  onReceive: {
    /** Calls the subscribers; werift looks it up at each call. */
    execute: (streamId: number, ppid: number, data: Buffer) => void;
  };
  /** Fires after every transmission round, including the one each SACK triggers. */
  flush: WeriftEvent<[]>;
  /** DATA chunks waiting for the congestion window. */
  outboundQueue: { streamId: number }[];
  /** DATA chunks sent and not yet acknowledged. */
  sentQueue: { streamId: number }[];
  /** Whether `stop()` ran or the association closed. */
  readonly isStopped: boolean;
  /** Starts the INIT / COOKIE ECHO retransmission timer; throws if it is running. */
  timer1Start(chunk: unknown): void;
  /** Set while T1 runs; werift clears it to `undefined` when it stops. */
  readonly timer1Handle?: unknown;
  /** Starts the SHUTDOWN (ACK) retransmission timer; throws if it is running. */
  t2Start(chunk: unknown): void;
  /** Set while T2 runs; werift clears it to `undefined` when it stops. */
  readonly timer2Handle?: unknown;
  /** The receive state of a stream, created on its first DATA chunk. */
  getInboundStream(streamId: number): InboundStream;
  /** Streams waiting for an outgoing reset request. */
  reconfigQueue: number[];
  /** The outgoing reset request awaiting its response, if any. */
  readonly reconfigRequest?: { streams: number[]; requestSequence: number };
  /** Handles one parameter of a received RE-CONFIG chunk. */
  receiveReconfigParam(param: ReconfigParam): Promise<void>;
  /** Streams reset in both directions; werift closes their channels. */
  onReconfigStreams: {
    /** Calls the subscribers; werift looks it up at each call. */
    execute: (streamIds: number[]) => void;
  };
  /** Sends a reset request for the queued streams unless one is outstanding. */
  transmitReconfigRequest(): Promise<void>;
  /** Stops the reset request's retransmission timer. */
  timerReconfigCancel(): void;
  /** The retransmission timeout, in seconds; every retransmission timer uses it. */
  rto: number;
  /** The smoothed round-trip time in seconds, once one has been measured. */
  readonly srtt?: number;
  /** The round-trip time variation in seconds, once one has been measured. */
  readonly rttvar?: number;
  /** The SCTP MTU: the largest packet it sends, common header included. */
  readonly mtu: number;
  /** Sends one packet holding `chunk.bytes`; every send goes through it. */
  sendChunk(
    chunk: { readonly type: number; readonly bytes: Buffer },
  ): Promise<void>;
  /** One round of sending: retransmissions, then queued DATA within the window. */
  transmitOnce(): Promise<void>;
  /** Queues one message on a stream with a given payload protocol id. */
  send(
    streamId: number,
    ppid: number,
    data: Buffer,
    options: { ordered: boolean },
  ): Promise<void>;
}

/** A parsed RE-CONFIG parameter: a reset request, a response, or another. */
export interface ReconfigParam {
  /** The parameter type (RFC 6525 section 4): {@linkcode RECONFIG_RESPONSE}, say. */
  readonly type: number;
  /** A response's result. */
  readonly result?: number;
  /** A response's sequence number: the request it answers. */
  readonly responseSequence?: number;
}

/** werift's reassembly buffer of one incoming SCTP stream. */
export interface InboundStream {
  /** Yields every message complete and in order: stream id, PPID, payload. */
  popMessages(): Generator<[number, number, Buffer]>;
}

/** werift's `RTCSctpTransport`, for what it keeps private. */
export interface SctpTransportInternals {
  /** The first stream id it gives a channel; the next ones follow in steps of two. */
  dataChannelId?: number;
  /** Messages held until the association is up. */
  dataChannelQueue: [RTCDataChannel, number, Buffer][];
}

/** The private manager that owns a werift peer connection's DTLS certificate. */
export interface SecureManager {
  /** Used for every DTLS transport from the next offer or answer on. */
  certificate?: RTCCertificate;
}

/** SCTP association state ESTABLISHED in werift's numbering. */
export const SCTP_ESTABLISHED = 4;
/** RFC 8832 payload protocol id of the data channel establishment protocol. */
export const PPID_DCEP = 50;
/** RFC 8831 payload protocol id of an empty binary message (one 0x00 byte on the wire). */
export const PPID_BINARY_EMPTY = 57;
/** The payload protocol ids werift can receive: DCEP, string, binary, empty string, empty binary. */
export const PPIDS_WERIFT_KNOWS: ReadonlySet<number> = new Set([
  PPID_DCEP,
  51,
  53,
  56,
  PPID_BINARY_EMPTY,
]);
/** The DCEP message type DATA_CHANNEL_ACK. */
export const DCEP_ACK = 2;
/** The DCEP message type DATA_CHANNEL_OPEN. */
export const DCEP_OPEN = 3;
/** The RE-CONFIG parameter type of a Re-configuration Response. */
export const RECONFIG_RESPONSE = 16;
/** The response result "Success - Performed". */
export const RECONFIG_PERFORMED = 1;

/**
 * Whether `param` is the "performed" answer to the reset request `sctp` has
 * out: werift completes the request as it handles it.
 */
export function completesRequest(
  sctp: SctpAssociation,
  param: ReconfigParam,
): boolean {
  return param.type === RECONFIG_RESPONSE &&
    param.result === RECONFIG_PERFORMED &&
    param.responseSequence !== undefined &&
    param.responseSequence === sctp.reconfigRequest?.requestSequence;
}

/** The message of whatever werift threw, which is not always an `Error`. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
