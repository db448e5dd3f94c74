/**
 * `/webrtc` (private-to-private) for js-libp2p 3.x: the SDP offer, answer and
 * ICE candidates go over a `/webrtc-signaling/0.0.1` stream on a connection
 * through a circuit relay; then the peers talk directly over WebRTC, with
 * p2prtc's core and any backend underneath.
 *
 * Listening needs the circuit relay transport: the node listens on
 * `<relay>/p2p-circuit` (a reservation) and on `/webrtc`, and advertises
 * `<relay>/p2p-circuit/webrtc/p2p/<self>` for each reservation.
 *
 * @module
 */

import {
  type ComponentLogger,
  type Connection,
  type DialTransportOptions,
  InvalidParametersError,
  type Libp2pEvents,
  type Listener,
  type ListenerEvents,
  type Logger,
  type PeerId,
  serviceCapabilities,
  serviceDependencies,
  type Startable,
  type Stream,
  type Transport,
  transportSymbol,
  TypedEventEmitter,
  type TypedEventTarget,
  type Upgrader,
} from "@libp2p/interface";
import type {
  ConnectionManager,
  Registrar,
  TransportManager,
} from "@libp2p/interface-internal";
import {
  CODE_P2P,
  CODE_P2P_CIRCUIT,
  CODE_WEBRTC,
  type Multiaddr,
  multiaddr,
} from "@multiformats/multiaddr";
import { Circuit, WebRTC } from "@multiformats/multiaddr-matcher";
import { peerIdFromString } from "@libp2p/peer-id";
import type {
  IceCandidate,
  IceServer,
  PeerConnectionBackend,
} from "../core/backend.ts";
import { connectPrivate } from "../core/private_connect.ts";
import type { StreamOptions } from "../core/stream.ts";
import {
  relaySignaling,
  type RelaySignalingOptions,
  SIGNALING_PROTOCOL,
} from "../signaling/relay.ts";
import { holdEarlyCandidates } from "./early_candidates.ts";
import {
  tapBackend,
  type TapOptions,
  tapOptionsOf,
  type TappedPeerConnection,
} from "./tap.ts";
import { upgradeConnection } from "./upgrade.ts";
import { webStreamsOf } from "./web_streams.ts";

/** Options for {@linkcode p2prtcWebRTC}. */
export interface P2prtcWebRTCInit {
  /** The WebRTC stack; any backend can dial and listen on `/webrtc`. */
  backend: PeerConnectionBackend;
  /** STUN and TURN servers. Default: none. */
  iceServers?: IceServer[];
  /** The local address ICE gathers on, for example `"127.0.0.1"`. */
  bindAddress?: string;
  /** Which local candidates to send the peer; the others are dropped. */
  candidateFilter?: (candidate: IceCandidate) => boolean;
  /**
   * The time limit of the signalling exchange, in ms. Default 30 000; an
   * inbound one is also bounded by the node's inbound upgrade timeout.
   */
  negotiationTimeout?: number;
  /** Limits of the signalling stream's messages. */
  signaling?: RelaySignalingOptions;
  /**
   * As the answerer, how long after our answer the ICE candidates of a
   * dialer that sent them before its offer are held back, in ms (see
   * `early_candidates.ts`: that is `@libp2p/webrtc` over node-datachannel,
   * whose DTLS fails or stalls when our checks reach it before our answer).
   * Default 1000; only such a dialer that cannot reach us directly waits.
   */
  answererCandidateDelay?: number;
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
}

/** The node components {@linkcode p2prtcWebRTC} uses. */
export interface P2prtcWebRTCComponents {
  /** Takes the signalling protocol's handler. */
  registrar: Registrar;
  /** Upgrades inbound connections. */
  upgrader: Upgrader;
  /** Dials the relayed connection, and lists the relay reservations. */
  transportManager: TransportManager;
  /** Finds a connection to the peer that already exists. */
  connectionManager: ConnectionManager;
  /** Says when a relay reservation starts. */
  events: TypedEventTarget<Libp2pEvents>;
  /** The node's loggers. */
  logger: ComponentLogger;
}

/**
 * A js-libp2p transport for `/webrtc` over p2prtc, with any backend. Needs
 * `circuitRelayTransport()` (and identify) in the same node.
 *
 * @example A node reachable through a relay, then directly over WebRTC
 * ```ts ignore
 * import { createLibp2p } from "libp2p";
 * import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
 * import { identify } from "@libp2p/identify";
 * import { werift } from "@p2prtc/webrtc/werift";
 * import { p2prtcWebRTC } from "@p2prtc/webrtc/libp2p";
 *
 * const node = await createLibp2p({
 *   addresses: { listen: [`${relayAddr}/p2p-circuit`, "/webrtc"] },
 *   transports: [
 *     tcp(),
 *     circuitRelayTransport(),
 *     p2prtcWebRTC({ backend: werift() }),
 *   ],
 *   connectionEncrypters: [noise()],
 *   streamMuxers: [yamux()],
 *   services: { identify: identify() },
 * });
 * ```
 */
export function p2prtcWebRTC(
  init: P2prtcWebRTCInit,
): (components: P2prtcWebRTCComponents) => Transport {
  return (components) => new WebRTCTransport(components, init);
}

class WebRTCTransport implements Transport, Startable {
  readonly [transportSymbol] = true as const;
  readonly [Symbol.toStringTag] = "@p2prtc/webrtc";
  readonly [serviceCapabilities] = ["@libp2p/transport"];
  readonly [serviceDependencies] = [
    "@libp2p/identify",
    "@libp2p/circuit-relay-v2-transport",
  ];
  readonly #components: P2prtcWebRTCComponents;
  readonly #init: P2prtcWebRTCInit;
  readonly #tapOptions: TapOptions;
  readonly #log: Logger;
  /** Ends inbound attempts when the node stops. */
  #shutdown = new AbortController();

  constructor(components: P2prtcWebRTCComponents, init: P2prtcWebRTCInit) {
    this.#components = components;
    this.#init = init;
    this.#tapOptions = tapOptionsOf(init);
    this.#log = components.logger.forComponent("p2prtc:webrtc");
  }

  async start(): Promise<void> {
    this.#shutdown = new AbortController();
    await this.#components.registrar.handle(
      SIGNALING_PROTOCOL,
      (stream, connection) => void this.#answer(stream, connection),
      // Signalling runs on the relayed connection, which is limited.
      { runOnLimitedConnection: true },
    );
  }

  async stop(): Promise<void> {
    this.#shutdown.abort();
    await this.#components.registrar.unhandle(SIGNALING_PROTOCOL);
  }

  /**
   * Dials `<relay>/p2p-circuit/webrtc/p2p/<peer>`: reaches the peer through
   * the relay (or a connection that exists), signals on that connection,
   * and returns the direct one.
   */
  async dial(
    ma: Multiaddr,
    options: DialTransportOptions,
  ): Promise<Connection> {
    const { circuit, target } = splitWebRTCAddr(ma);
    const { signal, onProgress } = options;
    const relayed = this.#components.connectionManager.getConnections(target)
      .find((c) => c.status === "open") ??
      await this.#components.transportManager.dial(circuit, {
        signal,
        onProgress,
      });
    const stream = await relayed.newStream(SIGNALING_PROTOCOL, {
      signal,
      runOnLimitedConnection: true,
    });
    const connected = await this.#connect(
      stream,
      relayed.remotePeer,
      "offerer",
      ma,
      options.upgrader,
      signal,
      onProgress,
    );
    return connected!;
  }

  /** Answers a signalling stream a peer opened through the relay. */
  async #answer(stream: Stream, relayed: Connection): Promise<void> {
    const { upgrader } = this.#components;
    const signal = upgrader.createInboundAbortSignal(this.#shutdown.signal);
    try {
      await this.#connect(
        stream,
        relayed.remotePeer,
        "answerer",
        multiaddr(`/webrtc/p2p/${relayed.remotePeer}`),
        upgrader,
        signal,
      );
    } catch (error) {
      this.#log.error(
        "incoming /webrtc from %p failed - %e",
        relayed.remotePeer,
        error,
      );
    } finally {
      signal.clear();
    }
  }

  /**
   * Negotiates over the signalling stream, then upgrades. Whatever fails
   * resets the stream (the negotiation aborts its channel) and closes the
   * peer connection.
   */
  async #connect(
    stream: Stream,
    remotePeer: PeerId,
    role: "offerer" | "answerer",
    remoteAddr: Multiaddr,
    upgrader: Upgrader,
    signal: AbortSignal,
    onProgress?: DialTransportOptions["onProgress"],
  ): Promise<Connection | undefined> {
    let signaling;
    try {
      signaling = relaySignaling(webStreamsOf(stream), this.#init.signaling);
    } catch (error) {
      stream.abort(error as Error);
      throw error;
    }
    let peerConnection: TappedPeerConnection | undefined;
    const backend = tapBackend(
      this.#init.backend,
      (tap) => peerConnection = tap,
      this.#tapOptions,
    );
    const connection = await connectPrivate(
      role === "answerer"
        ? holdEarlyCandidates(signaling, {
          delay: this.#init.answererCandidateDelay,
        })
        : signaling,
      {
        backend,
        remotePeer,
        role,
        iceServers: this.#init.iceServers,
        bindAddress: this.#init.bindAddress,
        candidateFilter: this.#init.candidateFilter,
        timeout: this.#init.negotiationTimeout,
        signal,
        remoteAddr: remoteAddr.toString(),
      },
    );
    return await upgradeConnection({
      connection,
      peerConnection: peerConnection!,
      remoteAddr,
      direction: role === "offerer" ? "outbound" : "inbound",
      upgrader,
      streamOptions: this.#tapOptions.streamOptions,
      log: this.#log,
      signal,
      onProgress,
    });
  }

  createListener(): Listener {
    return new RelayedWebRTCListener(this.#components);
  }

  listenFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter((ma) => WebRTC.exactMatch(ma));
  }

  dialFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter((ma) =>
      WebRTC.exactMatch(ma) &&
      ma.getComponents().some((c) => c.code === CODE_P2P_CIRCUIT)
    );
  }
}

/**
 * The relayed address and the peer of a `/webrtc` address: the address
 * without its `/webrtc`, and its last `/p2p/`.
 *
 * @throws {InvalidParametersError} if it names no peer.
 */
function splitWebRTCAddr(
  ma: Multiaddr,
): { circuit: Multiaddr; target: PeerId } {
  const components = ma.getComponents();
  const target = components.findLast((c) => c.code === CODE_P2P)?.value;
  if (target === undefined) {
    throw new InvalidParametersError(`${ma} names no peer to dial`);
  }
  return {
    circuit: multiaddr(components.filter((c) => c.code !== CODE_WEBRTC)),
    target: peerIdFromString(target),
  };
}

/**
 * Listening on `/webrtc`: nothing to bind; the addresses are those of the
 * relay reservations, with `/webrtc` after `/p2p-circuit`.
 */
class RelayedWebRTCListener extends TypedEventEmitter<ListenerEvents>
  implements Listener {
  readonly #components: P2prtcWebRTCComponents;

  constructor(components: P2prtcWebRTCComponents) {
    super();
    this.#components = components;
  }

  listen(): Promise<void> {
    this.#components.events.addEventListener(
      "transport:listening",
      this.#onListening,
    );
    return Promise.resolve();
  }

  /** A reservation started: the node should ask for our addresses again. */
  readonly #onListening = (event: CustomEvent<Listener>) => {
    if (circuitAddrs(event.detail).length > 0) {
      this.safeDispatchEvent("listening");
    }
  };

  getAddrs(): Multiaddr[] {
    return this.#components.transportManager.getListeners()
      .filter((listener) => !(listener instanceof RelayedWebRTCListener))
      .flatMap((listener) =>
        circuitAddrs(listener).map((ma) => ma.encapsulate("/webrtc"))
      );
  }

  updateAnnounceAddrs(): void {
    // The addresses follow the reservations; there is nothing of ours to add.
  }

  close(): Promise<void> {
    this.#components.events.removeEventListener(
      "transport:listening",
      this.#onListening,
    );
    queueMicrotask(() => this.safeDispatchEvent("close"));
    return Promise.resolve();
  }
}

/** A listener's `<relay>/p2p/<relay id>/p2p-circuit` addresses. */
function circuitAddrs(listener: Listener): Multiaddr[] {
  return listener.getAddrs().filter((ma) =>
    Circuit.exactMatch(ma) &&
    ma.getComponents().at(-1)?.code === CODE_P2P_CIRCUIT
  );
}
