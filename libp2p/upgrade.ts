/**
 * Handing a p2prtc connection to js-libp2p: a `MultiaddrConnection` for its
 * lifetime, the data-channel muxer for its streams, and the upgrader call
 * that makes the two a js-libp2p `Connection`. Encryption is skipped (DTLS
 * protects WebRTC, and the peer is already authenticated: in Noise for
 * WebRTC-Direct, by the relayed connection for `/webrtc`).
 *
 * @module
 */

import type {
  AbortOptions,
  Connection,
  DialTransportOptions,
  Logger,
  PeerId,
  Upgrader,
} from "@libp2p/interface";
import { AbstractMultiaddrConnection, type SendResult } from "@libp2p/utils";
import type { Multiaddr } from "@multiformats/multiaddr";
import { raceSignal } from "race-signal";
import type { Uint8ArrayList } from "uint8arraylist";
import type { WebRTCConnection } from "../core/connection.ts";
import type { StreamOptions } from "../core/stream.ts";
import { DataChannelMuxerFactory } from "./muxer.ts";
import type { TappedPeerConnection } from "./tap.ts";

/** A {@linkcode WebRTCConnection} as js-libp2p's `MultiaddrConnection`. */
class WebRTCMultiaddrConnection extends AbstractMultiaddrConnection {
  readonly #connection: WebRTCConnection;

  constructor(
    connection: WebRTCConnection,
    init: {
      remoteAddr: Multiaddr;
      direction: "inbound" | "outbound";
      log: Logger;
    },
  ) {
    super(init);
    this.#connection = connection;
    // The peer connection failed or was closed under us.
    connection.closed.then(() => {
      if (this.status === "open") this.onTransportClosed();
    });
  }

  sendData(data: Uint8ArrayList): SendResult {
    // Never called: the muxer sends nothing on the connection itself.
    return { sentBytes: data.byteLength, canSendMore: true };
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    this.#connection.close();
    await raceSignal(this.#connection.closed, options?.signal);
  }

  sendReset(): void {
    this.#connection.close();
  }

  sendPause(): void {
    // A peer connection has no flow control of its own; streams have theirs.
  }

  sendResume(): void {
    // See sendPause.
  }
}

/** What {@linkcode upgradeConnection} needs. */
export interface UpgradeInit {
  /** The authenticated p2prtc connection. */
  connection: WebRTCConnection;
  /** Its peer connection, whose channels the muxer takes. */
  peerConnection: TappedPeerConnection;
  /** The address js-libp2p reports for the peer. */
  remoteAddr: Multiaddr;
  /** Whether we dialled. */
  direction: "inbound" | "outbound";
  /** The node's upgrader. */
  upgrader: Upgrader;
  /** Options for every stream's data channel. */
  streamOptions?: StreamOptions;
  /** The transport's logger. */
  log: Logger;
  /** Aborts the upgrade. */
  signal: AbortSignal;
  /** Dial progress, for outbound connections. */
  onProgress?: DialTransportOptions["onProgress"];
}

/**
 * Upgrades `init.connection` to a js-libp2p connection: outbound ones are
 * returned, inbound ones reach the node through its upgrader. If the upgrade
 * fails, the p2prtc connection is closed.
 */
export async function upgradeConnection(
  init: UpgradeInit,
): Promise<Connection | undefined> {
  const { connection, direction, upgrader, signal } = init;
  const maConn = new WebRTCMultiaddrConnection(connection, {
    remoteAddr: init.remoteAddr,
    direction,
    log: init.log.newScope(`${direction}:${connection.remotePeer}`),
  });
  const options = {
    skipEncryption: true as const,
    skipProtection: true,
    remotePeer: connection.remotePeer as PeerId,
    muxerFactory: new DataChannelMuxerFactory({
      peerConnection: init.peerConnection,
      streamOptions: init.streamOptions,
      log: maConn.log,
    }),
    signal,
    onProgress: init.onProgress,
  };
  try {
    if (direction === "outbound") {
      return await upgrader.upgradeOutbound(maConn, options);
    }
    await upgrader.upgradeInbound(maConn, options);
    return undefined;
  } catch (error) {
    connection.close();
    throw error;
  }
}
