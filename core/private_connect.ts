/**
 * Private-to-private (`/webrtc`) connections: a peer connection set up over a
 * {@linkcode SignalingChannel} and handed out as a
 * {@linkcode WebRTCConnection}.
 *
 * There is no Noise on `/webrtc`: the spec leans on the signalling path to
 * say who the peer is (a relayed libp2p connection is itself authenticated; a
 * rendezvous server checks a signature before it forwards anything). So the
 * caller passes the peer ID that path vouched for, and the connection reports
 * it.
 *
 * @module
 */

import { peerIdFromString } from "@libp2p/peer-id";
import type {
  IceCandidate,
  IceServer,
  PeerConnectionBackend,
} from "./backend.ts";
import { type StreamHandler, WebRTCConnection } from "./connection.ts";
import type { PeerId } from "./identity.ts";
import { negotiate } from "./negotiation.ts";
import type { SignalingChannel } from "./signaling.ts";
import type { StreamOptions } from "./stream.ts";

/** Options for {@linkcode connectPrivate}. */
export interface PrivateConnectOptions {
  /** The WebRTC stack. */
  backend: PeerConnectionBackend;
  /**
   * The peer at the other end of the signalling channel, as the signalling
   * path authenticated it: a peer ID or its string form.
   */
  remotePeer: PeerId | string;
  /**
   * `"offerer"` for the side that opened the signalling channel (the dialer,
   * in the spec), `"answerer"` for the side that accepted it.
   */
  role: "offerer" | "answerer";
  /** STUN and TURN servers. Default: none. */
  iceServers?: IceServer[];
  /** The local address ICE gathers on, for example `"127.0.0.1"`. */
  bindAddress?: string;
  /** Which local candidates to send; the others are dropped. */
  candidateFilter?: (candidate: IceCandidate) => boolean;
  /** The longest SDP accepted from the peer, in characters. Default 64 KiB. */
  maxSdpLength?: number;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /** The time limit of the signalling exchange, in ms. Default 30 000. */
  timeout?: number;
  /** The connection's remote address. Default `/webrtc/p2p/<remotePeer>`. */
  remoteAddr?: string;
  /** Options for the connection's streams. */
  streamOptions?: StreamOptions;
  /** Protocol handlers the connection starts with. */
  handlers?: ReadonlyMap<string, StreamHandler>;
}

/**
 * Connects to the peer at the other end of `signaling` over `/webrtc` and
 * returns the connection once data channels can open. On failure everything
 * made for the attempt is closed and the signalling channel aborted.
 *
 * @throws {import("./negotiation.ts").NegotiationError} if the peer breaks the
 * signalling protocol, goes away, or the connection fails.
 * @throws {import("./errors.ts").TimeoutError} past `timeout`.
 */
export async function connectPrivate(
  signaling: SignalingChannel,
  options: PrivateConnectOptions,
): Promise<WebRTCConnection> {
  const remotePeer = typeof options.remotePeer === "string"
    ? peerIdFromString(options.remotePeer)
    : options.remotePeer;
  const pc = options.backend.createPeerConnection({
    iceServers: options.iceServers ?? [],
    bindAddress: options.bindAddress,
  });
  // Before negotiating: channels the peer opens as soon as it can are kept.
  const connection = new WebRTCConnection(pc, {
    remoteAddr: options.remoteAddr ?? `/webrtc/p2p/${remotePeer}`,
    direction: options.role === "offerer" ? "outbound" : "inbound",
    streamOptions: options.streamOptions,
    handlers: options.handlers,
  });
  try {
    await negotiate(pc, signaling, options.role, {
      signal: options.signal,
      timeout: options.timeout,
      candidateFilter: options.candidateFilter,
      maxSdpLength: options.maxSdpLength,
    });
  } catch (error) {
    connection.close();
    await connection.closed;
    throw error;
  }
  connection.ready(remotePeer);
  return connection;
}
