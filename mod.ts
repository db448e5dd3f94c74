/**
 * p2prtc: a libp2p WebRTC transport for Deno.
 *
 * It speaks the libp2p WebRTC specs on the wire, so Deno programs can talk to
 * js-libp2p, go-libp2p and rust-libp2p peers and to browsers. The WebRTC stack
 * is a plug-in (a {@linkcode PeerConnectionBackend}: libdatachannel, werift or
 * the browser's own), and so is signalling (a {@linkcode SignalingChannel}).
 *
 * This entry point holds what is the same whatever the stack: the stream
 * ({@linkcode WebRTCStream}, one data channel carrying the spec's framing and
 * its FIN / STOP_SENDING / RESET / FIN_ACK state machine), the framing codec,
 * the two seams, and the typed errors.
 *
 * @example Frames on the wire
 * ```ts
 * import { encodeFrame, Flag, FrameDecoder } from "@p2prtc/webrtc";
 * import { strictEqual } from "node:assert/strict";
 *
 * // FIN is flag 0 and is still written: 02 08 00.
 * strictEqual(encodeFrame({ flag: Flag.FIN }).join(" "), "2 8 0");
 *
 * const decoder = new FrameDecoder();
 * decoder.push(new Uint8Array([0x04, 0x12, 0x02, 0x68, 0x69]), (frame) => {
 *   strictEqual(new TextDecoder().decode(frame.message), "hi");
 * });
 * ```
 *
 * @example Telling errors apart by code
 * ```ts
 * import { P2prtcError, StreamResetError } from "@p2prtc/webrtc";
 * import { strictEqual } from "node:assert/strict";
 *
 * const error: unknown = new StreamResetError(true, 0x1003);
 * if (error instanceof P2prtcError && error.code === "ERR_STREAM_RESET") {
 *   strictEqual((error as StreamResetError).remote, true);
 * }
 * ```
 *
 * @module
 */

export type {
  BackendCapabilities,
  CertificateFingerprint,
  CertificatePem,
  DataChannel,
  DataChannelInit,
  DataChannelState,
  DirectListenOptions,
  DirectUdpListener,
  HandleCount,
  IceCandidate,
  IceCredentials,
  IceServer,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
  PeerConnectionState,
  SessionDescription,
  StunRequest,
} from "./core/backend.ts";
export type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "./core/signaling.ts";
export {
  ConnectionFailedError,
  FrameTooLargeError,
  InvalidCerthashError,
  InvalidFingerprintError,
  InvalidIceCredentialError,
  InvalidMultiaddrError,
  InvalidMultistreamMessageError,
  InvalidPrivateKeyError,
  InvalidSdpError,
  InvalidStunUsernameError,
  ListenFailedError,
  MalformedFrameError,
  MalformedSignalingMessageError,
  MultistreamMessageTooLargeError,
  NoiseHandshakeError,
  NotSupportedError,
  P2prtcError,
  PeerIdMismatchError,
  ProtocolNegotiationError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
  StreamClosedError,
  StreamErrorCode,
  StreamResetError,
  StreamStoppedError,
  TimeoutError,
  UnresolvedMultiaddrError,
  UnsupportedCerthashError,
} from "./core/errors.ts";
export {
  decodeFrameBody,
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  prefixLength,
  varintLength,
} from "./core/framing.ts";
export {
  type CloseOptions,
  type StreamOptions,
  WebRTCStream,
} from "./core/stream.ts";
export {
  ConnectionClosedError,
  type ConnectionOptions,
  type NewStreamOptions,
  type StreamHandler,
  WebRTCConnection,
} from "./core/connection.ts";
export {
  AGENT_VERSION,
  type ConnectOptions,
  type DialOptions,
  type ListenOptions,
  type TransportOptions,
  WebRTCTransport,
} from "./core/transport.ts";
export { dialDirect, type DirectDialOptions } from "./core/direct_dial.ts";
export {
  exportIdentity,
  generateIdentity,
  type Identity,
  identityFromPrivateKey,
  importIdentity,
  loadOrCreateIdentity,
  type PeerId,
  type PrivateKey,
} from "./core/identity.ts";
export {
  handle,
  type MultistreamOptions,
  type NegotiableStream,
  NegotiatedStream,
  select,
  selectLazy,
  type SupportedProtocols,
} from "./core/multistream.ts";
export {
  INIT_CHANNEL_LABEL,
  negotiate,
  NegotiationError,
  type NegotiationOptions,
} from "./core/negotiation.ts";
export {
  connectPrivate,
  type PrivateConnectOptions,
} from "./core/private_connect.ts";
export { ping, PING_PROTOCOL, PingError } from "./core/ping.ts";
export { IDENTIFY_PROTOCOL } from "./core/identify.ts";
export { decodeCerthash, encodeCerthash } from "./core/certhash.ts";
export {
  type DirectListenerOptions,
  listenDirect,
  WebRTCDirectListener,
} from "./core/direct_listen.ts";
export {
  exportCertificate,
  generateCertificate,
  type GenerateCertificateOptions,
  type GeneratedCertificate,
  importCertificate,
  InvalidCertificateError,
  loadOrCreateCertificate,
  type LoadOrCreateCertificateOptions,
} from "./core/certificate.ts";
