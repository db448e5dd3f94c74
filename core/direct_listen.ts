/**
 * WebRTC-Direct listening (libp2p/specs webrtc/webrtc-direct.md; spec-notes
 * 4.4): one UDP port, one peer connection per dialer ICE session, with no
 * signalling.
 *
 * The first STUN Binding request of an unknown session carries the dialer's
 * ufrag in its USERNAME. The listener validates it before allocating
 * anything (v1 and v2), builds the dialer's offer from it, answers with its
 * own ICE credentials equal to the server ufrag, acts as DTLS server with
 * fingerprint checks off (the dialer's certificate is learnt in DTLS and
 * bound into the Noise prologue), and runs Noise XX as initiator on
 * channel 0. Authenticated connections are queued for
 * {@linkcode WebRTCDirectListener.accept}.
 *
 * @module
 */

import type {
  CertificateFingerprint,
  CertificatePem,
  DataChannel,
  DirectUdpListener,
  PeerConnection,
  PeerConnectionBackend,
  StunRequest,
} from "./backend.ts";
import {
  generateCertificate,
  type GeneratedCertificate,
  importCertificate,
  InvalidCertificateError,
  sameFingerprint,
} from "./certificate.ts";
import {
  ConnectionClosedError,
  type StreamHandler,
  WebRTCConnection,
} from "./connection.ts";
import {
  ConnectionFailedError,
  InvalidMultiaddrError,
  NotSupportedError,
  TimeoutError,
} from "./errors.ts";
import { type Identity, libp2pPrivateKey } from "./identity.ts";
import { webRTCDirectMultiaddr } from "./multiaddr.ts";
import { noiseHandshake, noiseRoleOf } from "./noise.ts";
import { noisePrologue } from "./noise_prologue.ts";
import { buildClientOffer } from "./sdp.ts";
import { type StreamOptions, WebRTCStream } from "./stream.ts";
import { parseStunUsername, type StunUsername } from "./ufrag.ts";

/** Options for {@linkcode listenDirect}. */
export interface DirectListenerOptions {
  /** The WebRTC stack; it must have `capabilities.directListen`. */
  backend: PeerConnectionBackend;
  /** This node's identity, proven to every dialer in Noise. */
  identity: Identity;
  /**
   * The DTLS certificate of every connection of this listener, whose hash is
   * the advertised certhash: pass the same one (from
   * `loadOrCreateCertificate`, say) to keep the address across restarts.
   * A {@linkcode GeneratedCertificate} or just its PEM pair; either way it
   * must be an ECDSA P-256 certificate with its own key, and a given
   * fingerprint must be that certificate's. Its validity dates are not
   * checked (peers compare only the hash). Default: a fresh one, valid 14
   * days.
   */
  certificate?: GeneratedCertificate | CertificatePem;
  /**
   * Handshakes under way at once; the first STUN request of any further
   * dialer is ignored before anything is allocated for it (the dialer
   * retransmits, and gets in once a slot frees). Default 128, as go.
   */
  maxInFlightHandshakes?: number;
  /**
   * The time limit from the first STUN request to the end of Noise, in ms;
   * past it everything the handshake holds is freed. Default 10 000.
   */
  handshakeTimeout?: number;
  /**
   * How long the listener waits, once channel 0 has opened, before it sends
   * the first Noise message, in ms. js-libp2p 3 dialers attach their message
   * handler only after they have handled channel 0's `open` event, and a
   * message that arrives before then is dropped, failing the dial; a short
   * wait lets them catch up (docs/known-issues.md). `0` sends at once.
   * Default 30.
   */
  noiseStartDelay?: number;
  /**
   * Authenticated connections waiting for
   * {@linkcode WebRTCDirectListener.accept}; more are closed. Default 32.
   * Unused with `onConnection`.
   */
  acceptQueueSize?: number;
  /**
   * Sees every authenticated connection first, before the accept queue or
   * `onConnection` (the transport tracks its connections with it).
   */
  onAuthenticated?: (connection: WebRTCConnection) => void;
  /** Receives every authenticated connection instead of the accept queue. */
  onConnection?: (connection: WebRTCConnection) => void;
  /** Options for the connections' streams. */
  streamOptions?: StreamOptions;
  /**
   * Inbound streams each connection may have negotiating at once; more are
   * reset with `RESOURCE_LIMIT_EXCEEDED`. Default 256 (see
   * `ConnectionOptions.maxPendingInboundStreams`).
   */
  maxPendingInboundStreams?: number;
  /** Protocol handlers every connection starts with. */
  handlers?: ReadonlyMap<string, StreamHandler>;
}

/** The limits of {@linkcode DirectListenerOptions} that must be positive integers. */
const LIMITS = [
  "maxInFlightHandshakes",
  "handshakeTimeout",
  "acceptQueueSize",
  "maxPendingInboundStreams",
] as const;

/** The address to listen on, read from `/ip4|ip6/<ip>/udp/<port>/webrtc-direct`. */
interface ListenAddress {
  family: 4 | 6;
  host: string;
  port: number;
}

const LISTEN_ADDRESS =
  /^\/(ip4|ip6)\/([^/]+)\/udp\/(\d{1,5})\/webrtc-direct\/?$/;

function parseListenAddress(addr: string): ListenAddress {
  const match = typeof addr === "string" ? LISTEN_ADDRESS.exec(addr) : null;
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    throw new InvalidMultiaddrError(
      `a WebRTC-Direct listen address is /ip4|ip6/<ip>/udp/<port>/webrtc-direct, got ${
        JSON.stringify(String(addr).slice(0, 100))
      }`,
    );
  }
  const family = match[1] === "ip4" ? 4 : 6;
  const host = match[2];
  if (
    family === 4 ? !/^\d{1,3}(\.\d{1,3}){3}$/.test(host) : !host.includes(":")
  ) {
    throw new InvalidMultiaddrError(
      `${JSON.stringify(host)} is not an IPv${family} address`,
    );
  }
  return { family, host, port };
}

/** One dialer's session, from its first STUN request until it closes. */
interface Session {
  abort: AbortController;
  connection?: WebRTCConnection;
}

/**
 * Listens on WebRTC-Direct. Create it with {@linkcode listenDirect} (or
 * `WebRTCTransport.listen`). Iterate it, or call
 * {@linkcode WebRTCDirectListener.accept}, for authenticated inbound
 * connections.
 *
 * Closing it stops taking new dialers at once, aborts every handshake
 * under way and closes the connections still in the accept queue.
 * Connections already accepted are the caller's and keep working; a backend
 * may keep the shared UDP port bound until the last of them has closed
 * (libdatachannel does).
 */
export class WebRTCDirectListener
  implements AsyncDisposable, AsyncIterable<WebRTCConnection> {
  /**
   * The address dialers use:
   * `/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<…>/p2p/<peer id>`.
   * For an unspecified bind address (`0.0.0.0`, `::`) it names the loopback
   * address; advertise the interfaces' addresses instead.
   */
  readonly addr: string;
  /** The certificate fingerprint in the certhash. */
  readonly fingerprint: CertificateFingerprint;
  /** Resolves once the listener has closed. */
  readonly closed: Promise<void>;

  readonly #udp: DirectUdpListener;
  readonly #options: DirectListenerOptions;
  readonly #certificate: GeneratedCertificate;
  readonly #address: ListenAddress;
  readonly #sessions = new Map<string, Session>();
  readonly #queue: WebRTCConnection[] = [];
  readonly #waiters: {
    resolve: (c: WebRTCConnection) => void;
    reject: (e: Error) => void;
  }[] = [];
  #inFlight = 0;
  #dropped = 0;
  #refused = 0;
  #isClosed = false;
  #resolveClosed!: () => void;

  /** @internal Use {@linkcode listenDirect}. */
  constructor(
    udp: DirectUdpListener,
    address: ListenAddress,
    certificate: GeneratedCertificate,
    options: DirectListenerOptions,
    onStun: { handler: (request: StunRequest) => void },
  ) {
    this.#udp = udp;
    this.#address = address;
    this.#certificate = certificate;
    this.#options = options;
    this.fingerprint = certificate.fingerprint;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const unspecified = address.host === "0.0.0.0" || address.host === "::";
    this.addr = webRTCDirectMultiaddr({
      host: unspecified
        ? (address.family === 4 ? "127.0.0.1" : "::1")
        : address.host,
      port: udp.port,
      fingerprint: certificate.fingerprint,
      peerId: options.identity.peerId.toString(),
    }).toString();
    onStun.handler = (request) => this.#onStunRequest(request);
  }

  /** The bound UDP port. */
  get port(): number {
    return this.#udp.port;
  }

  /**
   * STUN requests dropped because their USERNAME is not a valid v1 or v2
   * WebRTC-Direct one (or the source address is unusable), counted for
   * monitoring.
   */
  get droppedStunRequests(): number {
    return this.#dropped;
  }

  /**
   * STUN requests of new dialers ignored because `maxInFlightHandshakes`
   * handshakes were under way, counted for monitoring (a dialer that keeps
   * retransmitting counts once per request).
   */
  get refusedHandshakes(): number {
    return this.#refused;
  }

  /** Handshakes under way now. */
  get handshakesInFlight(): number {
    return this.#inFlight;
  }

  /** Whether the listener has closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * The next authenticated connection.
   *
   * @throws {ConnectionClosedError} once the listener is closed.
   */
  accept(): Promise<WebRTCConnection> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#isClosed) {
      return Promise.reject(
        new ConnectionClosedError("the listener is closed"),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<
      WebRTCConnection
    >();
    this.#waiters.push({ resolve, reject });
    return promise;
  }

  /** Yields authenticated connections until the listener closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<WebRTCConnection> {
    while (true) {
      let connection: WebRTCConnection;
      try {
        connection = await this.accept();
      } catch (error) {
        if (this.#isClosed) return;
        throw error;
      }
      yield connection;
    }
  }

  /**
   * Releases the UDP port, aborts every handshake and closes the queued
   * connections. Idempotent.
   */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const session of this.#sessions.values()) {
      if (session.connection === undefined) {
        session.abort.abort(new ConnectionClosedError("the listener closed"));
      }
    }
    for (const connection of this.#queue.splice(0)) connection.close();
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new ConnectionClosedError("the listener is closed"));
    }
    this.#udp.close();
    this.#resolveClosed();
  }

  /** Closes the listener and waits for its handshakes to let go. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    while (this.#inFlight > 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  #onStunRequest(request: StunRequest): void {
    if (this.#isClosed) return;
    // Validated before anything is allocated; junk is dropped silently.
    let username: StunUsername;
    let offer: string;
    try {
      username = parseStunUsername(
        `${request.serverUfrag}:${request.clientUfrag}`,
      );
      offer = buildClientOffer({
        host: request.remoteHost,
        port: request.remotePort,
        ufrag: username.clientUfrag,
        pwd: username.clientPwd,
      });
    } catch {
      this.#dropped++;
      return;
    }
    if (this.#sessions.has(username.serverUfrag)) return;
    if (this.#inFlight >= (this.#options.maxInFlightHandshakes ?? 128)) {
      this.#refused++;
      return;
    }
    const session: Session = { abort: new AbortController() };
    this.#sessions.set(username.serverUfrag, session);
    this.#inFlight++;
    this.#handshake(session, username, offer, request).finally(() => {
      this.#inFlight--;
    });
  }

  async #handshake(
    session: Session,
    username: StunUsername,
    offer: string,
    request: StunRequest,
  ): Promise<void> {
    const { backend, identity } = this.#options;
    const timeout = this.#options.handshakeTimeout ?? 10_000;
    const timer = setTimeout(
      () =>
        session.abort.abort(
          new TimeoutError(
            `the WebRTC-Direct handshake took over ${timeout} ms`,
          ),
        ),
      timeout,
    );
    const { signal } = session.abort;
    const unspecified = this.#address.host === "0.0.0.0" ||
      this.#address.host === "::";
    let connection: WebRTCConnection | undefined;
    try {
      const pc = backend.createPeerConnection({
        iceServers: [],
        ...(unspecified ? {} : { bindAddress: this.#address.host }),
        certificate: this.#certificate.pem,
        iceUdpMuxPort: this.#udp.port,
        disableFingerprintVerification: true,
      });
      const rawChannel0 = pc.createDataChannel("", {
        negotiated: true,
        id: 0,
      });
      const channel0 = new WebRTCStream(rawChannel0);
      const channel0Open = whenOpen(rawChannel0, signal);
      const family = request.remoteHost.includes(":") ? "ip6" : "ip4";
      // Before anything can arrive: channels the dialer opens early are kept.
      connection = new WebRTCConnection(pc, {
        remoteAddr:
          `/${family}/${request.remoteHost}/udp/${request.remotePort}/webrtc-direct`,
        direction: "inbound",
        streamOptions: this.#options.streamOptions,
        handlers: this.#options.handlers,
        maxPendingInboundStreams: this.#options.maxPendingInboundStreams,
        // The dialer finishes Noise only on our last message, after we are
        // ready, so it has no reason to open streams before: whoever does
        // is not authenticated, and gets little.
        maxEarlyStreams: 4,
        maxEarlyReadBufferSize: 64 * 1024,
        onClose: () => {
          if (this.#sessions.get(username.serverUfrag) === session) {
            this.#sessions.delete(username.serverUfrag);
          }
        },
      });
      const conn = connection;
      signal.addEventListener("abort", () => conn.close(), { once: true });
      const connected = whenConnected(pc, signal);

      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer, {
        ufrag: username.serverUfrag,
        pwd: username.serverUfrag,
      });
      await connected;

      const dialerFingerprint = await remoteFingerprintOf(pc, signal);
      const prologue = noisePrologue({
        dialer: dialerFingerprint,
        listener: this.#certificate.fingerprint,
      });
      await channel0Open;
      await delay(this.#options.noiseStartDelay ?? 30, signal);
      const { remotePeer } = await noiseHandshake(channel0, {
        role: noiseRoleOf("listener"),
        privateKey: libp2pPrivateKey(identity),
        prologue,
        signal,
        timeout,
      });
      signal.throwIfAborted();
      clearTimeout(timer);
      connection.ready(remotePeer);
      session.connection = connection;
      this.#deliver(connection);
    } catch {
      // The dialer finds out from its own side; nothing to report here.
      connection?.close();
      if (connection === undefined) {
        this.#sessions.delete(username.serverUfrag);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #deliver(connection: WebRTCConnection): void {
    if (this.#isClosed) {
      connection.close();
      return;
    }
    this.#options.onAuthenticated?.(connection);
    const { onConnection } = this.#options;
    if (onConnection !== undefined) {
      try {
        onConnection(connection);
      } catch {
        connection.close();
      }
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve(connection);
      return;
    }
    if (this.#queue.length >= (this.#options.acceptQueueSize ?? 32)) {
      connection.close();
      return;
    }
    this.#queue.push(connection);
    connection.closed.then(() => {
      const index = this.#queue.indexOf(connection);
      if (index >= 0) this.#queue.splice(index, 1);
    });
  }
}

/**
 * Binds a WebRTC-Direct listener on `addr`,
 * `/ip4|ip6/<ip>/udp/<port>/webrtc-direct` (port `0` picks a free one), and
 * returns it once the port is bound. Its
 * {@linkcode WebRTCDirectListener.addr} is what dialers need.
 *
 * @example
 * ```ts ignore
 * const listener = await listenDirect("/ip4/127.0.0.1/udp/0/webrtc-direct", {
 *   backend: await libdatachannel(),
 *   identity: await generateIdentity(),
 * });
 * console.log(listener.addr);
 * for await (const connection of listener) console.log(connection.remotePeer);
 * ```
 *
 * @throws {InvalidMultiaddrError} for any other address.
 * @throws {NotSupportedError} if the backend cannot listen.
 * @throws {InvalidCertificateError} if `certificate` is unusable.
 * @throws {RangeError} if a limit or time limit is not a positive integer.
 * @throws {import("./errors.ts").ListenFailedError} if the port cannot be
 * bound.
 */
export async function listenDirect(
  addr: string,
  options: DirectListenerOptions,
): Promise<WebRTCDirectListener> {
  const address = parseListenAddress(addr);
  const { backend } = options;
  if (
    !backend.capabilities.directListen || backend.listenDirect === undefined
  ) {
    throw new NotSupportedError(
      `the ${backend.name} backend cannot listen on WebRTC-Direct (it needs ` +
        "ICE on a shared UDP port and no fingerprint checks); use the " +
        "libdatachannel backend",
    );
  }
  for (const name of LIMITS) {
    const value = options[name];
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      throw new RangeError(`${name} must be a positive integer, not ${value}`);
    }
  }
  const certificate = options.certificate === undefined
    ? await generateCertificate()
    : await checkedCertificate(options.certificate);
  // The listener registers its handler once it exists; requests that come
  // before are dropped (the dialer retransmits).
  const onStun = { handler: (_request: StunRequest) => {} };
  const udp = await backend.listenDirect({
    host: address.host,
    port: address.port,
    onStunRequest: (request) => onStun.handler(request),
  });
  try {
    return new WebRTCDirectListener(udp, address, certificate, options, onStun);
  } catch (error) {
    udp.close();
    throw error;
  }
}

/**
 * A caller's certificate, read from its PEM: a bad one fails here with a
 * clear error rather than later in DTLS, and a fingerprint given with it
 * must be the PEM's, since it becomes the advertised certhash.
 */
async function checkedCertificate(
  given: GeneratedCertificate | CertificatePem,
): Promise<GeneratedCertificate> {
  const generated = "pem" in given ? given : undefined;
  const certificate = await importCertificate(
    generated?.pem ?? given as CertificatePem,
  );
  if (
    generated !== undefined &&
    !sameFingerprint(generated.fingerprint, certificate.fingerprint)
  ) {
    throw new InvalidCertificateError(
      "the fingerprint given is not that of the certificate's PEM",
    );
  }
  return certificate;
}

/** Resolves once `pc` is connected; rejects if it fails or `signal` aborts. */
function whenConnected(pc: PeerConnection, signal: AbortSignal): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const previous = pc.onconnectionstatechange;
  const done = () => {
    pc.onconnectionstatechange = previous;
    signal.removeEventListener("abort", onAbort);
  };
  const onAbort = () => {
    done();
    reject(signal.reason);
  };
  pc.onconnectionstatechange = (state) => {
    previous?.(state);
    if (state === "connected") {
      done();
      resolve();
    } else if (state === "failed" || state === "closed") {
      done();
      reject(new ConnectionFailedError(`ICE or DTLS ${state}`));
    }
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  // Caught by the caller's await; keep an early rejection from going unhandled.
  promise.catch(() => {});
  return promise;
}

/**
 * Resolves once `channel` is open. It chains the handler already set (the
 * stream's), so both see the event.
 */
function whenOpen(channel: DataChannel, signal: AbortSignal): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const previous = channel.onopen;
  channel.onopen = () => {
    previous?.();
    resolve();
  };
  if (channel.readyState === "open") resolve();
  signal.addEventListener("abort", () => reject(signal.reason), {
    once: true,
  });
  promise.catch(() => {});
  return promise;
}

/** Waits `ms`, or rejects when `signal` aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The dialer's DTLS fingerprint; DTLS is done once connected. */
async function remoteFingerprintOf(
  pc: PeerConnection,
  signal: AbortSignal,
): Promise<CertificateFingerprint> {
  for (let i = 0; i < 50; i++) {
    const fingerprint = pc.remoteFingerprint();
    if (fingerprint !== null) return fingerprint;
    signal.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new ConnectionFailedError(
    "DTLS finished without the dialer's certificate fingerprint",
  );
}
