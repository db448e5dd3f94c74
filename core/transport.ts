/**
 * The transport: a backend and an identity, dialing by multiaddr, with
 * protocol handlers shared by every connection it makes.
 *
 * @module
 */

import type { PeerConnectionBackend } from "./backend.ts";
import type { StreamHandler, WebRTCConnection } from "./connection.ts";
import { dialDirect } from "./direct_dial.ts";
import {
  type DirectListenerOptions,
  listenDirect,
  type WebRTCDirectListener,
} from "./direct_listen.ts";
import { InvalidMultiaddrError, NotSupportedError } from "./errors.ts";
import type { Identity } from "./identity.ts";
import { handleIdentify, IDENTIFY_PROTOCOL } from "./identify.ts";
import { handlePing, PING_PROTOCOL } from "./ping.ts";
import {
  connectPrivate,
  type PrivateConnectOptions,
} from "./private_connect.ts";
import type { SignalingChannel } from "./signaling.ts";
import type { StreamOptions } from "./stream.ts";

/** What p2prtc calls itself in identify. */
export const AGENT_VERSION = "p2prtc/0.1.0";

/** Options for {@linkcode WebRTCTransport}. */
export interface TransportOptions {
  /** The WebRTC stack. */
  backend: PeerConnectionBackend;
  /** This node's libp2p identity. */
  identity: Identity;
  /**
   * The local address ICE gathers on, for example `"127.0.0.1"`. Default:
   * the stack's choice.
   */
  bindAddress?: string;
  /** Options for every stream. */
  streamOptions?: StreamOptions;
}

/** Options for {@linkcode WebRTCTransport.dial}. */
export interface DialOptions {
  /** Aborts the dial. */
  signal?: AbortSignal;
  /** The time limit of the dial, in ms. Default 20 000. */
  timeout?: number;
  /**
   * The WebRTC-Direct ufrag scheme: `1` (default, what every deployed
   * listener speaks) or `2` (the draft without SDP munging); see
   * `DirectDialOptions.ufragVersion`.
   */
  ufragVersion?: 1 | 2;
}

/** Options for {@linkcode WebRTCTransport.connect}. */
export type ConnectOptions = Omit<
  PrivateConnectOptions,
  "backend" | "handlers" | "streamOptions"
>;

/** Options for {@linkcode WebRTCTransport.listen}. */
export type ListenOptions = Omit<
  DirectListenerOptions,
  "backend" | "identity" | "handlers" | "streamOptions" | "onAuthenticated"
>;

/**
 * Dials WebRTC-Direct addresses and keeps track of the connections made.
 * Every connection answers libp2p ping and the protocols given to
 * {@linkcode WebRTCTransport.handle}.
 */
export class WebRTCTransport implements AsyncDisposable {
  readonly #options: TransportOptions;
  readonly #handlers: Map<string, StreamHandler>;
  readonly #connections = new Set<WebRTCConnection>();

  /** Makes a transport; see {@linkcode TransportOptions}. */
  constructor(options: TransportOptions) {
    this.#options = options;
    const info = { identity: options.identity, agentVersion: AGENT_VERSION };
    this.#handlers = new Map<string, StreamHandler>([
      [PING_PROTOCOL, (stream) => handlePing(stream)],
      [IDENTIFY_PROTOCOL, (stream, conn) => handleIdentify(stream, conn, info)],
    ]);
  }

  /** This node's identity. */
  get identity(): Identity {
    return this.#options.identity;
  }

  /** The connections open now. */
  get connections(): ReadonlySet<WebRTCConnection> {
    return this.#connections;
  }

  /** Handles inbound streams of `protocol` on every connection. */
  handle(protocol: string, handler: StreamHandler): void {
    this.#handlers.set(protocol, handler);
    for (const connection of this.#connections) {
      connection.handle(protocol, handler);
    }
  }

  /**
   * Dials `addr`, a WebRTC-Direct multiaddr with its certhash (and, best, the
   * peer's `/p2p/` id, which is then checked).
   *
   * @throws {NotSupportedError} for `/webrtc` (private-to-private) addresses,
   * which need a signalling channel.
   */
  async dial(
    addr: string,
    options: DialOptions = {},
  ): Promise<WebRTCConnection> {
    if (!addr.includes("/webrtc-direct")) {
      if (/\/webrtc(\/|$)/.test(addr)) {
        throw new NotSupportedError(
          "/webrtc addresses need a signalling channel; dial a " +
            "/webrtc-direct address, or use connect() with one",
        );
      }
      throw new InvalidMultiaddrError(`not a WebRTC address: ${addr}`);
    }
    const connection = await dialDirect(addr, {
      ...options,
      backend: this.#options.backend,
      identity: this.#options.identity,
      bindAddress: this.#options.bindAddress,
      streamOptions: this.#options.streamOptions,
      handlers: this.#handlers,
    });
    this.#adopt(connection);
    return connection;
  }

  /**
   * Connects over `/webrtc` (private-to-private) to the peer at the other end
   * of `signaling`: the relay protocol, a WebSocket rendezvous, or any
   * {@linkcode SignalingChannel}. The connection answers this transport's
   * protocols and counts among {@linkcode WebRTCTransport.connections}.
   *
   * @throws {import("./negotiation.ts").NegotiationError} if the peer breaks
   * the signalling protocol or goes away.
   * @throws {import("./errors.ts").TimeoutError} past `timeout`.
   */
  async connect(
    signaling: SignalingChannel,
    options: ConnectOptions,
  ): Promise<WebRTCConnection> {
    const connection = await connectPrivate(signaling, {
      bindAddress: this.#options.bindAddress,
      ...options,
      backend: this.#options.backend,
      streamOptions: this.#options.streamOptions,
      handlers: this.#handlers,
    });
    this.#adopt(connection);
    return connection;
  }

  /**
   * Listens on WebRTC-Direct at `addr`,
   * `/ip4|ip6/<ip>/udp/<port>/webrtc-direct` (port `0`: any free port).
   * Accepted connections answer this transport's protocols from the start
   * and count among {@linkcode WebRTCTransport.connections}; the listener's
   * `addr` is the address to give dialers.
   *
   * @throws {NotSupportedError} if the backend cannot listen (only
   * libdatachannel can).
   * @throws {InvalidMultiaddrError} for another kind of address.
   */
  async listen(
    addr: string,
    options: ListenOptions = {},
  ): Promise<WebRTCDirectListener> {
    return await listenDirect(addr, {
      ...options,
      backend: this.#options.backend,
      identity: this.#options.identity,
      streamOptions: this.#options.streamOptions,
      handlers: this.#handlers,
      onAuthenticated: (connection) => this.#adopt(connection),
    });
  }

  /** Closes every connection. Idempotent. */
  close(): void {
    for (const connection of this.#connections) connection.close();
  }

  /** Closes every connection and waits for them. */
  async [Symbol.asyncDispose](): Promise<void> {
    const closing = [...this.#connections].map((c) => c.closed);
    this.close();
    await Promise.all(closing);
  }

  #adopt(connection: WebRTCConnection): void {
    this.#connections.add(connection);
    connection.closed.then(() => this.#connections.delete(connection));
  }
}
