/**
 * A WebSocket rendezvous: peers connect to a small server
 * (`rendezvous_server.ts`, which runs with `Deno.serve` locally and on Deno
 * Deploy), prove the peer ID they claim, and then reach one another by peer
 * ID. Each connection attempt between two peers is a
 * {@linkcode SignalingChannel} that `WebRTCTransport.connect` (or
 * `connectPrivate`) turns into a `/webrtc` connection. Many attempts, to and
 * from many peers, share one WebSocket.
 *
 * The client uses only the standard `WebSocket`, so it runs in Deno and in
 * browsers alike.
 *
 * @example Two peers meet on a rendezvous server in this process
 * ```ts
 * import { RendezvousClient } from "./websocket.ts";
 * import { rendezvousHandler } from "./rendezvous_server.ts";
 * import { generateIdentity } from "../core/identity.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * await using handler = rendezvousHandler();
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   handler,
 * );
 * const url = `ws://127.0.0.1:${server.addr.port}`;
 * await using alice = await RendezvousClient.connect(url, {
 *   identity: await generateIdentity(),
 * });
 * await using bob = await RendezvousClient.connect(url, {
 *   identity: await generateIdentity(),
 * });
 *
 * // Alice opens an attempt to Bob; Bob accepts it, knowing who it is from.
 * const toBob = alice.dial(bob.peerId);
 * await toBob.send({ type: "offer", sdp: "v=0\r\n" });
 * const { remotePeer, channel: fromAlice } = await bob.accept();
 * strictEqual(remotePeer, alice.peerId.toString());
 * strictEqual((await fromAlice.receive())?.type, "offer");
 * // With transports: transport.connect(toBob, { remotePeer: bob.peerId,
 * // role: "offerer" }) on one side, role "answerer" on the other.
 * await toBob.close();
 * strictEqual(await fromAlice.receive(), null);
 * await fromAlice.close();
 * ```
 *
 * ## Wire protocol (version 1)
 *
 * One WebSocket, JSON text frames, each a JSON object with a `type`. Binary
 * frames are not part of it.
 *
 * Authentication, first thing on the socket:
 *
 * 1. server → `{"type":"challenge","v":1,"nonce":"<32 random bytes, base64url>"}`
 * 2. client → `{"type":"auth","peer":"<peer id>","key":"<public key>","sig":"<signature>"}`:
 *    `key` is the libp2p `PublicKey` protobuf, base64url; `sig` is the
 *    signature, base64url, by the peer's libp2p key over the UTF-8 of
 *    `p2prtc-rendezvous-auth/1\n<host>\n<nonce>\n<peer id>`. `host` is the
 *    host (and port) of the URL the client connected to, so a signature made
 *    for one server cannot be replayed to another; the nonce is fresh per
 *    connection, so it cannot be replayed to the same one; the context
 *    string keeps it from meaning anything in another protocol.
 * 3. server → `{"type":"ready","peer":"<peer id>","heartbeat":<ms>,"maxFrameSize":<bytes>}`
 *    once the key matches the peer ID and the signature verifies; otherwise
 *    it closes the socket with code 4001.
 *
 * Then, in both directions, attempts: a connection attempt between two
 * peers is named by the dialer's peer ID, the attempt id it chose (1–64
 * base64url characters) and which side is speaking (`dialer`). The client
 * sends `{"type":"send","to":"<peer id>","attempt":"<id>","dialer":<bool>,"op":…}`
 * and the server forwards it to the connection registered for `to` as
 * `{"type":"recv","from":"<peer id>","attempt":"<id>","dialer":<bool>,"op":…}`,
 * with `from` set to the sender's authenticated peer ID: nobody can speak
 * as another peer, and only the peer that proved an ID receives what is sent
 * to it. `op` is one of
 *
 * - `"open"`: the dialer starts the attempt (the receiver's
 *   {@linkcode RendezvousClient.accept} then yields it);
 * - `"data"`, with `"data"`: a signalling message, as
 *   `core/signaling_json.ts` writes it (`{"type":"offer","sdp":…}`,
 *   `{"type":"candidate","candidate":{…}|null}`, …);
 * - `"end"`: this side has nothing more to send (the other side's
 *   `receive()` then returns `null`);
 * - `"abort"`, with an optional `"reason"` (at most 128 characters): the
 *   attempt failed.
 *
 * The client also sends `{"type":"ping"}` every `heartbeat` ms, and the
 * server answers `{"type":"pong"}`. The server may send
 * `{"type":"error","code":"peer-not-found","peer":…,"attempt":…,"dialer":…}`
 * when a frame could not be delivered (fails that attempt with
 * {@linkcode PeerUnreachableError}; code `"unavailable"`, when its engine
 * failed, fails it with code `ERR_RENDEZVOUS_REFUSED`), and
 * `{"type":"gone","peer":…}` when a
 * peer this connection exchanged frames with has disconnected (fails every
 * attempt with it the same way).
 *
 * Frames a client does not understand are ignored, so a newer server can
 * add some; a `recv` frame whose attempt is known but whose content is not a
 * signalling message fails that attempt alone, with a typed error, and
 * aborts it at the other end.
 *
 * ## Limits
 *
 * The server bounds each connection: frame size ({@linkcode
 * DEFAULT_MAX_FRAME_SIZE}, 63 KiB, by default), frames per second (a token
 * bucket), time to authenticate and time without a frame, and what may wait
 * to be sent to it. Past a limit it closes the socket with a code the client
 * reports as {@linkcode RendezvousClosedError}'s `reason`. It sends
 * `{"type":"close","code":…,"reason":…}` just before, and the client takes
 * the code from it when the socket's own is lost: a Deno server drops the
 * connection without its close frame when frames the client sent before it
 * saw the close arrive after it.
 *
 * | code | reason                 |
 * | ---- | ---------------------- |
 * | 1001 | `"going-away"`         |
 * | 1009 | `"too-large"`          |
 * | 4001 | `"auth-failed"`        |
 * | 4002 | `"auth-timeout"`       |
 * | 4003 | `"idle"`               |
 * | 4004 | `"replaced"` (the same peer connected again) |
 * | 4005 | `"rate-limited"`       |
 * | 4006 | `"protocol-violation"` |
 * | 4007 | `"slow-reader"`        |
 *
 * The server keeps nothing per attempt, so attempts are bounded where their
 * state is, in the clients: attempts at once, attempts waiting to be
 * accepted, unread messages per attempt, an attempt's lifetime, and what may
 * wait in the WebSocket's send buffer.
 *
 * @module
 */

import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey as Libp2pPrivateKey } from "@libp2p/interface";
import {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
  TimeoutError,
} from "../core/errors.ts";
// Types only: the module that defines them reads files, which a browser
// cannot load.
import type { Identity, PeerId } from "../core/identity.ts";
import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { signalingMessageFromJson } from "../core/signaling_json.ts";
import { type AttemptLink, RendezvousAttempt } from "./rendezvous_attempt.ts";
import {
  ATTEMPT_ID_PATTERN,
  authPayload,
  canonicalPeerId,
  DEFAULT_MAX_FRAME_SIZE,
  MAX_PEER_ID_LENGTH,
  MAX_REASON_LENGTH,
  overLimit,
  parseFrame,
  positive,
  RENDEZVOUS_PROTOCOL_VERSION,
  RendezvousCloseCode,
  toBase64url,
  utf8Length,
} from "./rendezvous_protocol.ts";

export { DEFAULT_MAX_FRAME_SIZE, RendezvousCloseCode };
export {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
};
export type { IceCandidate } from "../core/backend.ts";
export type { PrivateKey } from "../core/identity.ts";
export type {
  Identity,
  PeerId,
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
};

/** Why a rendezvous connection ended; see the module's table of codes. */
export type RendezvousCloseReason =
  | "closed"
  | "going-away"
  | "too-large"
  | "auth-failed"
  | "auth-timeout"
  | "idle"
  | "replaced"
  | "rate-limited"
  | "protocol-violation"
  | "slow-reader"
  | "server-silent"
  | "connection-lost";

/**
 * The connection to the rendezvous server ended, or never got through
 * authentication. Every attempt still open fails with it.
 */
export class RendezvousClosedError extends P2prtcError {
  /** Why, as the close code says (or `"closed"` when this side closed). */
  readonly reason: RendezvousCloseReason;
  /** The WebSocket close code, when the socket closed with one. */
  readonly closeCode: number | undefined;

  /** Makes the error for `reason`; `message` gives the detail. */
  constructor(
    reason: RendezvousCloseReason,
    message: string,
    closeCode?: number,
    options?: ErrorOptions,
  ) {
    super("ERR_RENDEZVOUS_CLOSED", message, options);
    this.reason = reason;
    this.closeCode = closeCode;
  }
}

/**
 * The peer of an attempt cannot be reached through the rendezvous: it is
 * not connected to it (`"not-registered"`), or it disconnected during the
 * attempt (`"disconnected"`).
 */
export class PeerUnreachableError extends P2prtcError {
  /** The peer ID, as text. */
  readonly peer: string;
  /** Which of the two. */
  readonly reason: "not-registered" | "disconnected";

  /** Makes the error for `peer` and `reason`. */
  constructor(peer: string, reason: "not-registered" | "disconnected") {
    super(
      "ERR_RENDEZVOUS_PEER_UNREACHABLE",
      reason === "not-registered"
        ? `peer ${peer} is not connected to the rendezvous`
        : `peer ${peer} disconnected from the rendezvous`,
    );
    this.peer = peer;
    this.reason = reason;
  }
}

/** Options for {@linkcode RendezvousClient.connect}. */
export interface RendezvousClientOptions {
  /** The identity to authenticate as; its key signs the challenge. */
  identity: Identity;
  /** Aborts connecting (not the connection once made). */
  signal?: AbortSignal;
  /** The time limit for connecting and authenticating, in ms. Default 10 000. */
  timeout?: number;
  /**
   * The largest frame sent or accepted, in bytes. Default
   * {@linkcode DEFAULT_MAX_FRAME_SIZE}, or the server's, if smaller.
   */
  maxFrameSize?: number;
  /** The most attempts open at once, both directions together. Default 64. */
  maxAttempts?: number;
  /**
   * The most inbound attempts waiting for {@linkcode RendezvousClient.accept};
   * more are aborted at once (reason `"busy"`). Default 16.
   */
  maxPendingAttempts?: number;
  /**
   * The most unread messages per attempt; the attempt fails past it. Default
   * 256.
   */
  maxQueuedMessages?: number;
  /**
   * The longest an attempt may stay open, in ms; it is aborted with a
   * {@linkcode TimeoutError} then. Default 60 000 (twice the `/webrtc`
   * negotiation's own default).
   */
  attemptTimeout?: number;
  /**
   * The most bytes the WebSocket may hold unsent; a send past it fails with
   * code `ERR_SIGNALING_QUEUE_FULL`. Default 1 MiB.
   */
  maxBufferedAmount?: number;
}

/** An attempt another peer opened to this one. */
export interface IncomingAttempt {
  /** The peer that opened it, as the server authenticated it. */
  remotePeer: string;
  /** Its messages; this side answers (`role: "answerer"`). */
  channel: SignalingChannel;
}

/** Limits resolved from the options. */
interface ClientLimits {
  timeout: number;
  maxFrameSize: number;
  maxAttempts: number;
  maxPendingAttempts: number;
  maxQueuedMessages: number;
  attemptTimeout: number;
  maxBufferedAmount: number;
}

/**
 * An authenticated connection to a rendezvous server: dial peers by peer ID
 * and accept the attempts they open. See the module documentation.
 */
export class RendezvousClient implements AsyncDisposable {
  /** This peer's ID, as the server authenticated it. */
  readonly peerId: PeerId;
  /** The server's URL. */
  readonly url: string;
  readonly #identity: Identity;
  readonly #host: string;
  readonly #limits: ClientLimits;
  readonly #ws: WebSocket;
  readonly #outbound = new Map<string, RendezvousAttempt>();
  readonly #inbound = new Map<string, RendezvousAttempt>();
  readonly #pending: RendezvousAttempt[] = [];
  readonly #waiters: PromiseWithResolvers<IncomingAttempt>[] = [];
  readonly #ready = Promise.withResolvers<void>();
  readonly #closed = Promise.withResolvers<RendezvousClosedError>();
  readonly #socketClosed = Promise.withResolvers<void>();
  readonly #link: AttemptLink;
  #state: "challenge" | "auth" | "ready" | "closed" = "challenge";
  #error: RendezvousClosedError | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastSeen = Date.now();
  /** The server's `close` frame, if it sent one. */
  #announced: Record<string, unknown> | undefined;

  /**
   * Connects to the rendezvous at `url` (`ws:` or `wss:`) and authenticates
   * as `options.identity`; resolves once the server has accepted the
   * signature.
   *
   * @throws {RendezvousClosedError} if the server refuses the signature
   * (`reason` `"auth-failed"`), speaks another protocol
   * (`"protocol-violation"`) or cannot be reached (`"connection-lost"`).
   * @throws {TimeoutError} past `options.timeout`.
   * @throws {TypeError} if `url` is not a `ws:` or `wss:` URL.
   */
  static async connect(
    url: string | URL,
    options: RendezvousClientOptions,
  ): Promise<RendezvousClient> {
    options.signal?.throwIfAborted();
    const target = new URL(url);
    if (target.protocol !== "ws:" && target.protocol !== "wss:") {
      throw new TypeError(`not a ws: or wss: URL: ${target.href}`);
    }
    const client = new RendezvousClient(target, options);
    const timeout = client.#limits.timeout;
    const timer = setTimeout(
      () =>
        client.#abortHandshake(
          new TimeoutError(
            `the rendezvous at ${target.href} did not authenticate us within ${timeout} ms`,
          ),
        ),
      timeout,
    );
    const signal = options.signal;
    const onAbort = () => client.#abortHandshake(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await client.#ready.promise;
    } catch (error) {
      await client.#socketClosed.promise;
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
    return client;
  }

  private constructor(url: URL, options: RendezvousClientOptions) {
    this.url = url.href;
    this.#host = url.host;
    this.#identity = options.identity;
    this.peerId = options.identity.peerId;
    this.#limits = {
      timeout: positive(options.timeout, 10_000, "timeout"),
      maxFrameSize: positive(
        options.maxFrameSize,
        DEFAULT_MAX_FRAME_SIZE,
        "maxFrameSize",
      ),
      maxAttempts: positive(options.maxAttempts, 64, "maxAttempts"),
      maxPendingAttempts: positive(
        options.maxPendingAttempts,
        16,
        "maxPendingAttempts",
      ),
      maxQueuedMessages: positive(
        options.maxQueuedMessages,
        256,
        "maxQueuedMessages",
      ),
      attemptTimeout: positive(
        options.attemptTimeout,
        60_000,
        "attemptTimeout",
      ),
      maxBufferedAmount: positive(
        options.maxBufferedAmount,
        1024 * 1024,
        "maxBufferedAmount",
      ),
    };
    this.#link = {
      maxQueuedMessages: this.#limits.maxQueuedMessages,
      send: (attempt, op, extra) =>
        this.#send({
          type: "send",
          to: attempt.remotePeer,
          attempt: attempt.id,
          dialer: attempt.dialer,
          op,
          ...extra,
        }),
      finished: (attempt) => this.#finished(attempt),
    };
    // Settled on purpose before anyone awaits them.
    this.#ready.promise.catch(() => {});
    this.#ws = new WebSocket(url);
    this.#ws.onmessage = this.#onMessage;
    this.#ws.onclose = (event) => {
      const announced = this.#announced;
      // The code the server announced, when the socket lost it.
      const lost = event.code === 1005 || event.code === 1006 ||
        event.code === 0;
      this.#shutdown(
        lost && typeof announced?.code === "number"
          ? closeError(announced.code, String(announced.reason ?? ""))
          : closeError(event.code, event.reason),
      );
      this.#socketClosed.resolve();
    };
  }

  /**
   * Resolves when the connection has ended, with the reason; never rejects.
   */
  get closed(): Promise<RendezvousClosedError> {
    return this.#closed.promise;
  }

  /** Attempts open now, both directions, accepted or not. */
  get attempts(): number {
    return this.#outbound.size + this.#inbound.size;
  }

  /**
   * Opens an attempt to `peer` and returns its channel; this side offers
   * (`role: "offerer"`). Nothing waits: if the peer is not connected to the
   * rendezvous, the channel's next call fails with
   * {@linkcode PeerUnreachableError}.
   *
   * @throws {RendezvousClosedError} once the connection has ended.
   * @throws {P2prtcError} with code `ERR_INVALID_PEER_ID` if `peer` is not
   * a peer ID, or `ERR_RENDEZVOUS_TOO_MANY_ATTEMPTS` past `maxAttempts`.
   */
  dial(peer: PeerId | string): SignalingChannel {
    if (this.#error) throw this.#error;
    const remote = canonicalPeer(peer);
    if (this.attempts >= this.#limits.maxAttempts) {
      throw new P2prtcError(
        "ERR_RENDEZVOUS_TOO_MANY_ATTEMPTS",
        `${this.#limits.maxAttempts} rendezvous attempts are open already`,
      );
    }
    const id = toBase64url(crypto.getRandomValues(new Uint8Array(16)));
    const attempt = new RendezvousAttempt(
      this.#link,
      remote,
      id,
      true,
      this.#limits.attemptTimeout,
    );
    this.#outbound.set(attemptKey(remote, id), attempt);
    try {
      this.#send({
        type: "send",
        to: remote,
        attempt: id,
        dialer: true,
        op: "open",
      });
    } catch (error) {
      attempt.fail(error as Error, false);
    }
    return attempt;
  }

  /**
   * The next attempt another peer opened to this one.
   *
   * @throws {RendezvousClosedError} once the connection has ended.
   */
  accept(options: SignalingCallOptions = {}): Promise<IncomingAttempt> {
    const queued = this.#pending.shift();
    if (queued) return Promise.resolve(incoming(queued));
    if (this.#error) return Promise.reject(this.#error);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const waiter = Promise.withResolvers<IncomingAttempt>();
    this.#waiters.push(waiter);
    if (!signal) return waiter.promise;
    const onAbort = () => {
      const index = this.#waiters.indexOf(waiter);
      if (index >= 0) this.#waiters.splice(index, 1);
      waiter.reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return waiter.promise.finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  }

  /** Yields the attempts other peers open, until the connection ends. */
  async *[Symbol.asyncIterator](): AsyncIterator<IncomingAttempt> {
    while (true) {
      let next: IncomingAttempt;
      try {
        next = await this.accept();
      } catch (error) {
        if (this.#error) return;
        throw error;
      }
      yield next;
    }
  }

  /**
   * Closes the connection: every attempt still open fails with
   * {@linkcode RendezvousClosedError} (the server tells their peers this one
   * is gone). Resolves once the socket has closed. Idempotent.
   */
  async close(): Promise<void> {
    this.#shutdown(
      new RendezvousClosedError("closed", "the rendezvous client was closed"),
    );
    await this.#socketClosed.promise;
  }

  /** Same as {@linkcode RendezvousClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #abortHandshake(error: unknown): void {
    this.#ready.reject(error);
    this.#shutdown(
      new RendezvousClosedError("closed", "connecting was given up"),
    );
  }

  /** Ends everything once; the first reason wins. */
  #shutdown(error: RendezvousClosedError): void {
    if (this.#error) return;
    this.#error = error;
    this.#state = "closed";
    clearInterval(this.#heartbeat);
    this.#ready.reject(error);
    for (
      const attempt of [...this.#outbound.values(), ...this.#inbound.values()]
    ) {
      attempt.fail(error, false);
    }
    this.#pending.length = 0;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    if (
      this.#ws.readyState === WebSocket.CONNECTING ||
      this.#ws.readyState === WebSocket.OPEN
    ) {
      this.#ws.close(1000);
    }
    this.#closed.resolve(error);
  }

  /** Sends one frame now, or throws. */
  #send(frame: Record<string, unknown>): void {
    if (this.#error) throw this.#error;
    const text = JSON.stringify(frame);
    if (overLimit(text, this.#limits.maxFrameSize)) {
      throw new SignalingMessageTooLargeError(
        utf8Length(text),
        this.#limits.maxFrameSize,
      );
    }
    if (this.#ws.bufferedAmount > this.#limits.maxBufferedAmount) {
      throw new P2prtcError(
        "ERR_SIGNALING_QUEUE_FULL",
        `${this.#ws.bufferedAmount} bytes are waiting to go to the rendezvous`,
      );
    }
    this.#ws.send(text);
  }

  #onMessage = (event: MessageEvent): void => {
    if (this.#state === "closed") return;
    this.#lastSeen = Date.now();
    // The protocol has text frames only; anything else is not for us.
    if (typeof event.data !== "string") return;
    const frame = parseFrame(event.data);
    if (frame?.type === "close") {
      this.#announced = frame;
      return;
    }
    switch (this.#state) {
      case "challenge":
        this.#onChallenge(frame);
        return;
      case "auth":
        if (frame?.type === "ready") this.#onReady(frame);
        return;
      case "ready":
        if (frame) {
          this.#onFrame(
            frame,
            overLimit(event.data, this.#limits.maxFrameSize)
              ? utf8Length(event.data)
              : undefined,
          );
        }
        return;
    }
  };

  #onChallenge(frame: Record<string, unknown> | undefined): void {
    const nonce = frame?.nonce;
    if (
      frame?.type !== "challenge" ||
      frame.v !== RENDEZVOUS_PROTOCOL_VERSION ||
      typeof nonce !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(nonce)
    ) {
      this.#shutdown(
        new RendezvousClosedError(
          "protocol-violation",
          `${this.url} did not open with a version ${RENDEZVOUS_PROTOCOL_VERSION} rendezvous challenge`,
        ),
      );
      return;
    }
    this.#state = "auth";
    const key = this.#identity.privateKey as Libp2pPrivateKey;
    const peer = this.peerId.toString();
    (async () => {
      const sig = await key.sign(authPayload(this.#host, nonce, peer));
      if (this.#state !== "auth") return;
      this.#send({
        type: "auth",
        peer,
        key: toBase64url(publicKeyToProtobuf(key.publicKey)),
        sig: toBase64url(sig),
      });
    })().catch((error) =>
      this.#shutdown(
        new RendezvousClosedError(
          "closed",
          "signing the rendezvous challenge failed",
          undefined,
          { cause: error },
        ),
      )
    );
  }

  #onReady(frame: Record<string, unknown>): void {
    if (frame.peer !== this.peerId.toString()) {
      this.#shutdown(
        new RendezvousClosedError(
          "protocol-violation",
          `the rendezvous registered ${String(frame.peer)}, not us`,
        ),
      );
      return;
    }
    if (
      typeof frame.maxFrameSize === "number" && frame.maxFrameSize >= 1024
    ) {
      this.#limits.maxFrameSize = Math.min(
        this.#limits.maxFrameSize,
        frame.maxFrameSize,
      );
    }
    const heartbeat = typeof frame.heartbeat === "number"
      ? Math.min(Math.max(frame.heartbeat, 100), 600_000)
      : 20_000;
    this.#state = "ready";
    this.#heartbeat = setInterval(() => {
      // Three beats without a frame (the pongs included): the server is gone.
      if (Date.now() - this.#lastSeen > 3 * heartbeat) {
        this.#shutdown(
          new RendezvousClosedError(
            "server-silent",
            `the rendezvous sent nothing for ${3 * heartbeat} ms`,
          ),
        );
        return;
      }
      try {
        this.#send({ type: "ping" });
      } catch {
        // Full buffer: the silence check above decides.
      }
    }, heartbeat);
    this.#ready.resolve();
  }

  /** A frame after authentication; `tooLarge` is its size if over the limit. */
  #onFrame(frame: Record<string, unknown>, tooLarge: number | undefined): void {
    switch (frame.type) {
      case "recv":
        this.#onRecv(frame, tooLarge);
        return;
      case "gone": {
        const peer = frame.peer;
        if (typeof peer !== "string") return;
        for (const map of [this.#outbound, this.#inbound]) {
          for (const attempt of map.values()) {
            if (attempt.remotePeer === peer) {
              attempt.fail(
                new PeerUnreachableError(peer, "disconnected"),
                false,
              );
            }
          }
        }
        return;
      }
      case "error": {
        const { peer, attempt: id, dialer, code } = frame;
        if (typeof peer !== "string" || typeof id !== "string") return;
        // `dialer` is the flag this side sent.
        const attempt = (dialer === true ? this.#outbound : this.#inbound)
          .get(attemptKey(peer, id));
        attempt?.fail(
          code === "peer-not-found"
            ? new PeerUnreachableError(peer, "not-registered")
            : new P2prtcError(
              "ERR_RENDEZVOUS_REFUSED",
              `the rendezvous could not deliver a message (${
                String(code).slice(0, MAX_REASON_LENGTH)
              })`,
            ),
          false,
        );
        return;
      }
      default:
        // pong, and whatever a newer server sends.
        return;
    }
  }

  #onRecv(frame: Record<string, unknown>, tooLarge: number | undefined): void {
    const { from, attempt: id, dialer, op } = frame;
    if (
      typeof from !== "string" || from.length > MAX_PEER_ID_LENGTH ||
      typeof id !== "string" || !ATTEMPT_ID_PATTERN.test(id) ||
      typeof dialer !== "boolean"
    ) return;
    // The remote peer's `dialer` flag: true for attempts it opened.
    const key = attemptKey(from, id);
    const attempt = (dialer ? this.#inbound : this.#outbound).get(key);
    if (attempt === undefined) {
      if (dialer && op === "open" && tooLarge === undefined) {
        this.#incoming(from, id, key);
      }
      // Late frames of an attempt already over are dropped.
      return;
    }
    if (tooLarge !== undefined) {
      attempt.fail(
        new SignalingMessageTooLargeError(tooLarge, this.#limits.maxFrameSize),
        true,
      );
      return;
    }
    switch (op) {
      case "data": {
        let message: SignalingMessage;
        try {
          message = signalingMessageFromJson(frame.data);
        } catch (error) {
          attempt.fail(error as Error, true);
          return;
        }
        attempt.deliver(message);
        return;
      }
      case "end":
        attempt.remoteEnd();
        return;
      case "abort": {
        const reason = typeof frame.reason === "string"
          ? frame.reason.slice(0, MAX_REASON_LENGTH)
          : "no reason given";
        attempt.fail(
          new SignalingAbortedError(`the peer aborted the attempt: ${reason}`),
          false,
        );
        return;
      }
      case "open":
        return;
      default:
        attempt.fail(
          new MalformedSignalingMessageError(
            `unknown attempt operation ${JSON.stringify(op)}`,
          ),
          true,
        );
    }
  }

  #incoming(from: string, id: string, key: string): void {
    if (
      this.attempts >= this.#limits.maxAttempts ||
      this.#pending.length >= this.#limits.maxPendingAttempts
    ) {
      try {
        this.#send({
          type: "send",
          to: from,
          attempt: id,
          dialer: false,
          op: "abort",
          reason: "busy",
        });
      } catch {
        // The peer's attempt times out instead.
      }
      return;
    }
    const attempt = new RendezvousAttempt(
      this.#link,
      from,
      id,
      false,
      this.#limits.attemptTimeout,
    );
    this.#inbound.set(key, attempt);
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(incoming(attempt));
    else this.#pending.push(attempt);
  }

  #finished(attempt: RendezvousAttempt): void {
    const map = attempt.dialer ? this.#outbound : this.#inbound;
    const key = attemptKey(attempt.remotePeer, attempt.id);
    if (map.get(key) === attempt) map.delete(key);
    const index = this.#pending.indexOf(attempt);
    if (index >= 0) this.#pending.splice(index, 1);
  }
}

function incoming(attempt: RendezvousAttempt): IncomingAttempt {
  return { remotePeer: attempt.remotePeer, channel: attempt };
}

function attemptKey(peer: string, id: string): string {
  return `${peer} ${id}`;
}

function canonicalPeer(peer: PeerId | string): string {
  if (typeof peer !== "string") return peer.toString();
  const canonical = canonicalPeerId(peer);
  if (canonical === undefined) {
    throw new P2prtcError(
      "ERR_INVALID_PEER_ID",
      `not a peer ID: ${peer.slice(0, MAX_PEER_ID_LENGTH)}`,
    );
  }
  return canonical;
}

const REASONS: ReadonlyMap<number, RendezvousCloseReason> = new Map([
  [RendezvousCloseCode.GOING_AWAY, "going-away"],
  [RendezvousCloseCode.TOO_LARGE, "too-large"],
  [RendezvousCloseCode.AUTH_FAILED, "auth-failed"],
  [RendezvousCloseCode.AUTH_TIMEOUT, "auth-timeout"],
  [RendezvousCloseCode.IDLE_TIMEOUT, "idle"],
  [RendezvousCloseCode.REPLACED, "replaced"],
  [RendezvousCloseCode.RATE_LIMITED, "rate-limited"],
  [RendezvousCloseCode.PROTOCOL_VIOLATION, "protocol-violation"],
  [RendezvousCloseCode.SLOW_READER, "slow-reader"],
]);

function closeError(code: number, reason: string): RendezvousClosedError {
  const known = REASONS.get(code) ?? "connection-lost";
  const detail = reason ? `: ${reason.slice(0, MAX_REASON_LENGTH)}` : "";
  return new RendezvousClosedError(
    known,
    `the rendezvous connection closed (code ${code}${detail})`,
    code,
  );
}
