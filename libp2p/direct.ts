/**
 * `/webrtc-direct` for js-libp2p 3.x: dial and listen with p2prtc's core and
 * any backend, the connections upgraded by the node's own upgrader.
 *
 * @module
 */

import {
  type ComponentLogger,
  type Connection,
  type CreateListenerOptions,
  type DialTransportOptions,
  type Listener,
  type ListenerEvents,
  type Logger,
  type PrivateKey,
  serviceCapabilities,
  type Transport,
  transportSymbol,
  TypedEventEmitter,
  type Upgrader,
} from "@libp2p/interface";
import {
  CODE_CERTHASH,
  CODE_P2P,
  CODE_WEBRTC_DIRECT,
  type Multiaddr,
  multiaddr,
} from "@multiformats/multiaddr";
import { WebRTCDirect } from "@multiformats/multiaddr-matcher";
import type { PeerConnectionBackend } from "../core/backend.ts";
import { encodeCerthash } from "../core/certhash.ts";
import type { WebRTCConnection } from "../core/connection.ts";
import { dialDirect } from "../core/direct_dial.ts";
import {
  type DirectListenerOptions,
  listenDirect,
  type WebRTCDirectListener,
} from "../core/direct_listen.ts";
import { ConnectionFailedError } from "../core/errors.ts";
import { identityFromPrivateKey } from "../core/identity.ts";
import type { StreamOptions } from "../core/stream.ts";
import {
  tapBackend,
  type TapOptions,
  tapOptionsOf,
  type TappedPeerConnection,
} from "./tap.ts";
import { upgradeConnection } from "./upgrade.ts";

/** Options for {@linkcode p2prtcWebRTCDirect}. */
export interface P2prtcWebRTCDirectInit {
  /** The WebRTC stack. Listening needs one with `capabilities.directListen`. */
  backend: PeerConnectionBackend;
  /**
   * The local address dials gather ICE candidates on, for example
   * `"127.0.0.1"`. Default: the stack's choice.
   */
  bindAddress?: string;
  /** The time limit of a dial until the peer is authenticated, in ms. Default 20 000. */
  dialTimeout?: number;
  /** The WebRTC-Direct ufrag scheme dials use: `1` (default) or `2`. */
  ufragVersion?: 1 | 2;
  /**
   * Options for every stream's data channel. `maxReadBufferSize` is 16 MiB
   * unless set: js-libp2p's stream bounds what the application leaves unread.
   */
  streamOptions?: StreamOptions;
  /**
   * Inbound streams a connection holds before js-libp2p takes them; more
   * are reset. Default 10.
   */
  maxEarlyStreams?: number;
  /** Listener settings: its certificate, handshake limits and time limit. */
  listen?: Pick<
    DirectListenerOptions,
    "certificate" | "maxInFlightHandshakes" | "handshakeTimeout"
  >;
}

/** The node components {@linkcode p2prtcWebRTCDirect} uses. */
export interface P2prtcWebRTCDirectComponents {
  /** The node's key: Noise proves it to every peer. */
  privateKey: PrivateKey;
  /** The node's loggers. */
  logger: ComponentLogger;
}

/**
 * A js-libp2p transport for `/webrtc-direct` over p2prtc, with any backend.
 *
 * @example A js-libp2p node that dials and listens on WebRTC-Direct
 * ```ts ignore
 * import { createLibp2p } from "libp2p";
 * import { libdatachannel } from "@p2prtc/webrtc/libdatachannel";
 * import { p2prtcWebRTCDirect } from "@p2prtc/webrtc/libp2p";
 *
 * const node = await createLibp2p({
 *   addresses: { listen: ["/ip4/127.0.0.1/udp/0/webrtc-direct"] },
 *   transports: [p2prtcWebRTCDirect({ backend: await libdatachannel() })],
 * });
 * ```
 */
export function p2prtcWebRTCDirect(
  init: P2prtcWebRTCDirectInit,
): (components: P2prtcWebRTCDirectComponents) => Transport {
  return (components) => new WebRTCDirectTransport(components, init);
}

class WebRTCDirectTransport implements Transport {
  readonly [transportSymbol] = true as const;
  readonly [Symbol.toStringTag] = "@p2prtc/webrtc-direct";
  readonly [serviceCapabilities] = ["@libp2p/transport"];
  readonly #components: P2prtcWebRTCDirectComponents;
  readonly #init: P2prtcWebRTCDirectInit;
  readonly #tapOptions: TapOptions;
  readonly #log: Logger;

  constructor(
    components: P2prtcWebRTCDirectComponents,
    init: P2prtcWebRTCDirectInit,
  ) {
    this.#components = components;
    this.#init = init;
    this.#tapOptions = tapOptionsOf(init);
    this.#log = components.logger.forComponent("p2prtc:webrtc-direct");
  }

  async dial(
    ma: Multiaddr,
    options: DialTransportOptions,
  ): Promise<Connection> {
    let peerConnection: TappedPeerConnection | undefined;
    const backend = tapBackend(
      this.#init.backend,
      (tap) => peerConnection = tap,
      this.#tapOptions,
    );
    const connection = await dialDirect(ma.toString(), {
      backend,
      identity: identityFromPrivateKey(this.#components.privateKey),
      signal: options.signal,
      timeout: this.#init.dialTimeout,
      bindAddress: this.#init.bindAddress,
      ufragVersion: this.#init.ufragVersion,
    });
    const connected = await upgradeConnection({
      connection,
      peerConnection: peerConnection!,
      remoteAddr: ma,
      direction: "outbound",
      upgrader: options.upgrader,
      streamOptions: this.#tapOptions.streamOptions,
      log: this.#log,
      signal: options.signal,
      onProgress: options.onProgress,
    });
    return connected!;
  }

  createListener(options: CreateListenerOptions): Listener {
    return new DirectListener(
      this.#components,
      this.#init,
      options.upgrader,
      this.#log,
    );
  }

  listenFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter((ma) => WebRTCDirect.exactMatch(ma));
  }

  dialFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter((ma) =>
      WebRTCDirect.exactMatch(ma) &&
      ma.getComponents().some((c) => c.code === CODE_CERTHASH)
    );
  }
}

/**
 * A WebRTC-Direct listener whose authenticated connections are upgraded
 * into the node.
 */
class DirectListener extends TypedEventEmitter<ListenerEvents>
  implements Listener {
  readonly #components: P2prtcWebRTCDirectComponents;
  readonly #init: P2prtcWebRTCDirectInit;
  readonly #tapOptions: TapOptions;
  readonly #upgrader: Upgrader;
  readonly #log: Logger;
  /** Ends upgrades under way when the listener closes. */
  readonly #shutdown = new AbortController();
  /** Peer connections whose handshake has not been delivered yet. */
  readonly #pending = new Set<TappedPeerConnection>();
  #listener: WebRTCDirectListener | undefined;

  constructor(
    components: P2prtcWebRTCDirectComponents,
    init: P2prtcWebRTCDirectInit,
    upgrader: Upgrader,
    log: Logger,
  ) {
    super();
    this.#components = components;
    this.#init = init;
    this.#tapOptions = tapOptionsOf(init);
    this.#upgrader = upgrader;
    this.#log = log;
  }

  async listen(ma: Multiaddr): Promise<void> {
    // The core binds `/ip4|ip6/<ip>/udp/<port>/webrtc-direct`; a certhash or
    // peer id after it is ours anyway.
    const components = ma.getComponents();
    const end = components.findIndex((c) => c.code === CODE_WEBRTC_DIRECT);
    const backend = tapBackend(this.#init.backend, (tap) => {
      this.#pending.add(tap);
      tap.closed.then(() => this.#pending.delete(tap));
    }, this.#tapOptions);
    this.#listener = await listenDirect(
      multiaddr(components.slice(0, end + 1)).toString(),
      {
        ...this.#init.listen,
        backend,
        identity: identityFromPrivateKey(this.#components.privateKey),
        onConnection: (connection) => void this.#accept(connection),
      },
    );
    this.safeDispatchEvent("listening");
  }

  async #accept(connection: WebRTCConnection): Promise<void> {
    try {
      const peerConnection = this.#claim(connection);
      await upgradeConnection({
        connection,
        peerConnection,
        remoteAddr: multiaddr(connection.remoteAddr),
        direction: "inbound",
        upgrader: this.#upgrader,
        streamOptions: this.#tapOptions.streamOptions,
        log: this.#log,
        signal: this.#shutdown.signal,
      });
    } catch (error) {
      connection.close();
      this.#log.error("inbound connection failed - %e", error);
    }
  }

  /**
   * The peer connection under `connection`: the one handshake whose dialer
   * address is the connection's. Two dialers behind one address at once
   * (one process dialling twice over a shared UDP port) cannot be told
   * apart here, so such a connection is refused rather than guessed.
   */
  #claim(connection: WebRTCConnection): TappedPeerConnection {
    const [, , host, , port] = connection.remoteAddr.split("/");
    const matches = [...this.#pending].filter((tap) =>
      tap.remoteSdpAddress() === `${host} ${port}`
    );
    if (matches.length !== 1) {
      throw new ConnectionFailedError(
        matches.length === 0
          ? `no handshake from ${connection.remoteAddr} under way`
          : `${matches.length} handshakes from ${connection.remoteAddr} at once`,
      );
    }
    this.#pending.delete(matches[0]);
    return matches[0];
  }

  getAddrs(): Multiaddr[] {
    if (this.#listener === undefined) return [];
    // The node adds its own /p2p/.
    return [multiaddr(this.#listener.addr).decapsulateCode(CODE_P2P)];
  }

  updateAnnounceAddrs(addrs: Multiaddr[]): void {
    if (this.#listener === undefined) return;
    const certhash = encodeCerthash(this.#listener.fingerprint);
    for (let i = 0; i < addrs.length; i++) {
      const components = addrs[i].getComponents();
      const at = components.findIndex((c) => c.code === CODE_WEBRTC_DIRECT);
      if (
        !WebRTCDirect.exactMatch(addrs[i]) ||
        components[at + 1]?.code === CODE_CERTHASH
      ) continue;
      components.splice(at + 1, 0, {
        code: CODE_CERTHASH,
        name: "certhash",
        value: certhash,
      });
      addrs[i] = multiaddr(components);
    }
  }

  close(): Promise<void> {
    this.#listener?.close();
    this.#shutdown.abort();
    this.safeDispatchEvent("close");
    return Promise.resolve();
  }
}
