/**
 * The WebSocket rendezvous server: a `Deno.serve` handler that
 * authenticates peers and relays their signalling frames by peer ID. The
 * wire protocol and the client are in `websocket.ts`.
 *
 * The same handler runs locally and on Deno Deploy:
 *
 * ```ts ignore
 * import { kvEngine, rendezvousHandler } from "@p2prtc/webrtc/signaling/rendezvous_server";
 *
 * // One instance: the default engine keeps registrations in this isolate.
 * Deno.serve(rendezvousHandler());
 *
 * // Several instances (Deno Deploy, or processes sharing a database):
 * // they share one view of who is connected where through Deno KV.
 * Deno.serve(rendezvousHandler({ engine: kvEngine(await Deno.openKv()) }));
 * ```
 *
 * What the server guarantees:
 *
 * - a connection registers a peer ID only by signing the server's fresh
 *   challenge with that peer's key (close code 4001 otherwise);
 * - it receives only frames addressed to that ID, and every frame it sends
 *   is stamped with that ID as `from`, so it can neither read nor inject
 *   another peer's signalling;
 * - each connection is bounded: frame size, frames per second (a token
 *   bucket), time to authenticate, time without a frame, bytes waiting to be
 *   sent to it, peers remembered for disconnect notices; the server as a
 *   whole bounds its connections (`503` past them).
 *
 * Where connections live is the engine's business
 * ({@linkcode RendezvousEngine}): {@linkcode memoryEngine} for one instance,
 * {@linkcode kvEngine} for many. Never a module-level map: instances are
 * separate isolates, often separate machines, and only a shared engine sees
 * them all.
 *
 * @example A server on loopback, and a peer that cannot prove its ID
 * ```ts
 * import { rendezvousHandler } from "./rendezvous_server.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * await using handler = rendezvousHandler();
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   handler,
 * );
 * // Plain HTTP gets a 426: this endpoint speaks WebSocket only.
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * await response.body?.cancel();
 * strictEqual(response.status, 426);
 *
 * const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
 * const closed = new Promise<number>((resolve) => {
 *   ws.onclose = (event) => resolve(event.code);
 * });
 * // Answers the challenge with a claim it cannot back.
 * ws.addEventListener(
 *   "message",
 *   () =>
 *     ws.send(JSON.stringify({ type: "auth", peer: "nobody", key: "", sig: "" })),
 *   { once: true },
 * );
 * strictEqual(await closed, 4001); // authentication failed
 * ```
 *
 * @module
 */

import { publicKeyFromProtobuf } from "@libp2p/crypto/keys";
import { peerIdFromPublicKey, peerIdFromString } from "@libp2p/peer-id";
import {
  ATTEMPT_ID_PATTERN,
  ATTEMPT_OPS,
  authPayload,
  canonicalPeerId,
  DEFAULT_MAX_FRAME_SIZE,
  fromBase64url,
  MAX_REASON_LENGTH,
  overLimit,
  parseFrame,
  positive,
  RENDEZVOUS_PROTOCOL_VERSION,
  RendezvousCloseCode,
  toBase64url,
} from "./rendezvous_protocol.ts";
import { memoryEngine } from "./rendezvous_engine.ts";
import type {
  EngineEnvelope,
  EngineMember,
  EngineSink,
  RendezvousEngine,
} from "./rendezvous_engine.ts";

export { DEFAULT_MAX_FRAME_SIZE, memoryEngine, RendezvousCloseCode };
export type { EngineEnvelope, EngineMember, EngineSink, RendezvousEngine };
export {
  kvEngine,
  type KvEngineOptions,
  type KvKey,
  type KvKeyPart,
  type RendezvousKv,
  type RendezvousKvAtomic,
} from "./rendezvous_kv.ts";

/** Options for {@linkcode rendezvousHandler}. */
export interface RendezvousServerOptions {
  /**
   * Where registrations live and how frames reach other instances. Default:
   * a fresh {@linkcode memoryEngine}, for a single instance.
   */
  engine?: RendezvousEngine;
  /**
   * The host (and port) clients connect to, as they write it in their URL,
   * which their signatures cover. Default: each request's `Host`. Set it
   * behind a proxy that rewrites `Host`.
   */
  host?: string;
  /** The largest frame accepted, in bytes. Default 63 KiB. */
  maxFrameSize?: number;
  /** The most connections at once; more get `503`. Default 10 000. */
  maxConnections?: number;
  /** Frames a connection may send in a burst. Default 256. */
  messageBurst?: number;
  /** Frames per second a connection may send, sustained. Default 64. */
  messagesPerSecond?: number;
  /** Time to authenticate, in ms. Default 10 000. */
  authTimeout?: number;
  /**
   * Time without a frame before a connection is closed, in ms; clients are
   * told to ping every third of it. Default 60 000.
   */
  idleTimeout?: number;
  /**
   * Bytes that may wait to be sent to one connection; a reader that slow is
   * closed (code 4007). Default 1 MiB.
   */
  maxBufferedAmount?: number;
  /**
   * Peers a connection exchanged frames with, remembered so they can be told
   * when it goes; the oldest are forgotten past it. Default 256.
   */
  maxContacts?: number;
  /** Hears errors of the engine. Default: `console.warn`. */
  onError?: (error: unknown) => void;
}

/**
 * A `Deno.serve` handler with a way to stop: `close()` closes every
 * connection (code 1001) and leaves the engine.
 */
export interface RendezvousHandler extends AsyncDisposable {
  /** Handles one request: upgrades WebSocket requests, refuses the rest. */
  (request: Request): Promise<Response>;
  /** Connections open now, authenticated or not. */
  readonly connections: number;
  /** Closes every connection and leaves the engine. Idempotent. */
  close(): Promise<void>;
}

/** Makes a rendezvous handler; see the module documentation. */
export function rendezvousHandler(
  options: RendezvousServerOptions = {},
): RendezvousHandler {
  const server = new RendezvousServer(options);
  const handler = (request: Request) => server.handle(request);
  Object.defineProperty(handler, "connections", {
    get: () => server.connections,
  });
  return Object.assign(handler, {
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  }) as unknown as RendezvousHandler;
}

/** How long `close()` waits for sockets to finish closing. */
const CLOSE_WAIT_MS = 5_000;

interface Limits {
  maxFrameSize: number;
  maxConnections: number;
  messageBurst: number;
  messagesPerSecond: number;
  authTimeout: number;
  idleTimeout: number;
  maxBufferedAmount: number;
  maxContacts: number;
}

class RendezvousServer implements EngineSink {
  readonly limits: Limits;
  readonly #host: string | undefined;
  readonly #member: Promise<EngineMember>;
  readonly #connections = new Set<ServerConnection>();
  /** The authenticated connections of this instance, by peer ID. */
  readonly byPeer = new Map<string, ServerConnection>();
  readonly onError: (error: unknown) => void;
  #closing: Promise<void> | undefined;

  constructor(options: RendezvousServerOptions) {
    this.limits = {
      maxFrameSize: positive(
        options.maxFrameSize,
        DEFAULT_MAX_FRAME_SIZE,
        "maxFrameSize",
      ),
      maxConnections: positive(
        options.maxConnections,
        10_000,
        "maxConnections",
      ),
      messageBurst: positive(options.messageBurst, 256, "messageBurst"),
      messagesPerSecond: positive(
        options.messagesPerSecond,
        64,
        "messagesPerSecond",
      ),
      authTimeout: positive(options.authTimeout, 10_000, "authTimeout"),
      idleTimeout: positive(options.idleTimeout, 60_000, "idleTimeout"),
      maxBufferedAmount: positive(
        options.maxBufferedAmount,
        1024 * 1024,
        "maxBufferedAmount",
      ),
      maxContacts: positive(options.maxContacts, 256, "maxContacts"),
    };
    if (options.host !== undefined && /[\s]/.test(options.host)) {
      throw new TypeError(`invalid host ${JSON.stringify(options.host)}`);
    }
    this.#host = options.host;
    this.onError = options.onError ??
      ((error) => console.warn("rendezvous:", error));
    this.#member = (options.engine ?? memoryEngine()).join(this);
    // Awaited by every request; a failed join answers them with 503.
    this.#member.catch((error) => this.onError(error));
  }

  get connections(): number {
    return this.#connections.size;
  }

  async handle(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response(
        "p2prtc rendezvous: connect with a WebSocket\n",
        { status: 426, headers: { upgrade: "websocket" } },
      );
    }
    if (this.#closing) return unavailable("the server is shutting down");
    if (this.#connections.size >= this.limits.maxConnections) {
      return unavailable("too many connections");
    }
    let member: EngineMember;
    try {
      member = await this.#member;
    } catch {
      return unavailable("the rendezvous engine is not available");
    }
    // Read before the upgrade: the request is gone after it.
    const host = this.#host ?? new URL(request.url).host;
    let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
    try {
      upgraded = Deno.upgradeWebSocket(request);
    } catch {
      return new Response("not a valid WebSocket request\n", { status: 400 });
    }
    const connection = new ServerConnection(
      this,
      member,
      upgraded.socket,
      host,
    );
    this.#connections.add(connection);
    connection.gone.then(() => this.#connections.delete(connection));
    return upgraded.response;
  }

  deliver(envelope: EngineEnvelope): void {
    const connection = this.byPeer.get(envelope.to);
    if (connection?.ready) {
      connection.remember(envelope.from);
      connection.sendText(envelope.frame);
      return;
    }
    this.#bounce(envelope);
  }

  replaced(peer: string, conn: string): void {
    const connection = this.byPeer.get(peer);
    if (connection?.id === conn) {
      connection.closeWith(
        RendezvousCloseCode.REPLACED,
        "the same peer connected again",
      );
    }
  }

  close(): Promise<void> {
    return this.#closing ??= (async () => {
      const connections = [...this.#connections];
      for (const connection of connections) {
        connection.closeWith(
          RendezvousCloseCode.GOING_AWAY,
          "the server is shutting down",
        );
      }
      // Clients answer a close at once; one that does not is not waited for.
      await settleWithin(
        Promise.all(connections.map((c) => c.gone)),
        CLOSE_WAIT_MS,
      );
      let member: EngineMember | undefined;
      try {
        member = await this.#member;
      } catch {
        // Never joined: nothing to leave.
      }
      await member?.close();
    })();
  }

  /**
   * A frame reached this instance for a peer no longer here (it left between
   * the lookup and the delivery): the sender learns it as if it had never
   * been found.
   */
  #bounce(envelope: EngineEnvelope): void {
    const frame = parseFrame(envelope.frame);
    if (
      frame?.type !== "recv" || frame.op === "abort" ||
      typeof frame.attempt !== "string" || typeof frame.dialer !== "boolean"
    ) return;
    this.#member.then((member) =>
      member.forward({
        to: envelope.from,
        from: envelope.to,
        frame: JSON.stringify({
          type: "error",
          code: "peer-not-found",
          peer: envelope.to,
          attempt: frame.attempt,
          dialer: frame.dialer,
        }),
      })
    ).catch((error) => this.onError(error));
  }
}

/** One WebSocket, from the challenge to the close. */
class ServerConnection {
  readonly id: string = crypto.randomUUID();
  readonly #server: RendezvousServer;
  readonly #member: EngineMember;
  readonly #socket: WebSocket;
  readonly #host: string;
  readonly #nonce = toBase64url(crypto.getRandomValues(new Uint8Array(32)));
  readonly #contacts = new Set<string>();
  readonly #gone = Promise.withResolvers<void>();
  #state: "auth" | "verifying" | "ready" | "closed" = "auth";
  #peer: string | undefined;
  #tokens: number;
  #refilledAt = Date.now();
  #lastSeen = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    server: RendezvousServer,
    member: EngineMember,
    socket: WebSocket,
    host: string,
  ) {
    this.#server = server;
    this.#member = member;
    this.#socket = socket;
    this.#host = host;
    this.#tokens = server.limits.messageBurst;
    socket.onopen = () => {
      this.sendText(JSON.stringify({
        type: "challenge",
        v: RENDEZVOUS_PROTOCOL_VERSION,
        nonce: this.#nonce,
      }));
      this.#arm(server.limits.authTimeout);
    };
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = () => {
      this.#teardown();
      this.#gone.resolve();
    };
    // An error is followed by close, which cleans up.
    socket.onerror = () => {};
  }

  /** Resolves when the socket has closed. */
  get gone(): Promise<void> {
    return this.#gone.promise;
  }

  get ready(): boolean {
    return this.#state === "ready";
  }

  /** Remembers `peer` as one to tell when this connection goes. */
  remember(peer: string): void {
    if (peer === this.#peer) return;
    this.#contacts.delete(peer);
    this.#contacts.add(peer);
    if (this.#contacts.size > this.#server.limits.maxContacts) {
      this.#contacts.delete(this.#contacts.values().next().value!);
    }
  }

  sendText(text: string): void {
    if (this.#state === "closed") return;
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    if (this.#socket.bufferedAmount > this.#server.limits.maxBufferedAmount) {
      this.closeWith(
        RendezvousCloseCode.SLOW_READER,
        "too much is waiting to be sent to this connection",
      );
      return;
    }
    this.#socket.send(text);
  }

  /** Closes the socket with `code`, and stops handling it at once. */
  closeWith(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#teardown();
    try {
      // Said in a frame first: Deno drops the close code when frames the
      // client sent before it saw the close arrive after it.
      if (this.#socket.readyState === WebSocket.OPEN) {
        this.#socket.send(JSON.stringify({ type: "close", code, reason }));
      }
      this.#socket.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  #onMessage(data: unknown): void {
    if (this.#state === "closed") return;
    const limits = this.#server.limits;
    if (typeof data !== "string") {
      this.closeWith(
        RendezvousCloseCode.PROTOCOL_VIOLATION,
        "binary frames are not part of the protocol",
      );
      return;
    }
    if (overLimit(data, limits.maxFrameSize)) {
      this.closeWith(
        RendezvousCloseCode.TOO_LARGE,
        `frames are limited to ${limits.maxFrameSize} bytes`,
      );
      return;
    }
    if (!this.#take()) {
      this.closeWith(
        RendezvousCloseCode.RATE_LIMITED,
        `frames are limited to ${limits.messagesPerSecond} a second`,
      );
      return;
    }
    this.#lastSeen = Date.now();
    const frame = parseFrame(data);
    if (frame === undefined) {
      this.#violation("a frame that is not a JSON object");
      return;
    }
    if (this.#state === "auth") {
      if (frame.type !== "auth") {
        this.#violation("the first frame must be auth");
        return;
      }
      this.#state = "verifying";
      this.#authenticate(frame).catch((error) => {
        this.#server.onError(error);
        this.closeWith(
          RendezvousCloseCode.GOING_AWAY,
          "the rendezvous engine failed",
        );
      });
      return;
    }
    if (this.#state !== "ready") {
      this.#violation("a frame before ready");
      return;
    }
    switch (frame.type) {
      case "ping":
        this.sendText('{"type":"pong"}');
        return;
      case "send":
        this.#forward(frame);
        return;
      default:
        this.#violation(`unknown frame type ${String(frame.type)}`);
    }
  }

  async #authenticate(frame: Record<string, unknown>): Promise<void> {
    const peer = await verifyAuth(frame, this.#host, this.#nonce);
    if (this.#state !== "verifying") return;
    if (peer === undefined) {
      this.closeWith(
        RendezvousCloseCode.AUTH_FAILED,
        "the signature does not prove that peer ID",
      );
      return;
    }
    await this.#member.register(peer, this.id);
    if (this.#state !== "verifying") {
      // Closed while registering: undo it.
      await this.#member.unregister(peer, this.id);
      return;
    }
    this.#peer = peer;
    this.#server.byPeer.set(peer, this);
    this.#state = "ready";
    const limits = this.#server.limits;
    this.sendText(JSON.stringify({
      type: "ready",
      peer,
      heartbeat: Math.floor(limits.idleTimeout / 3),
      maxFrameSize: limits.maxFrameSize,
    }));
    this.#arm(limits.idleTimeout);
  }

  #forward(frame: Record<string, unknown>): void {
    const { to, attempt, dialer, op, reason } = frame;
    const target = typeof to === "string" ? canonicalPeerId(to) : undefined;
    if (
      target === undefined ||
      typeof attempt !== "string" || !ATTEMPT_ID_PATTERN.test(attempt) ||
      typeof dialer !== "boolean" ||
      typeof op !== "string" || !ATTEMPT_OPS.has(op) ||
      (op === "data") !== ("data" in frame) ||
      (reason !== undefined &&
        (typeof reason !== "string" || reason.length > MAX_REASON_LENGTH))
    ) {
      this.#violation("a send frame without a valid target, attempt or op");
      return;
    }
    const from = this.#peer!;
    // Built afresh: whatever else the sender put in, `from` included, is
    // not forwarded.
    const out: Record<string, unknown> = {
      type: "recv",
      from,
      attempt,
      dialer,
      op,
    };
    if (op === "data") out.data = frame.data;
    if (op === "abort" && reason !== undefined) out.reason = reason;
    this.remember(target);
    this.#member.forward({ to: target, from, frame: JSON.stringify(out) })
      .then((delivered) => {
        if (!delivered && op !== "abort") {
          this.sendText(JSON.stringify({
            type: "error",
            code: "peer-not-found",
            peer: target,
            attempt,
            dialer,
          }));
        }
      }, (error) => {
        this.#server.onError(error);
        this.sendText(JSON.stringify({
          type: "error",
          code: "unavailable",
          peer: target,
          attempt,
          dialer,
        }));
      });
  }

  #violation(message: string): void {
    this.closeWith(RendezvousCloseCode.PROTOCOL_VIOLATION, message);
  }

  /** Takes a token from the bucket, refilled for the time gone by. */
  #take(): boolean {
    const limits = this.#server.limits;
    const now = Date.now();
    this.#tokens = Math.min(
      limits.messageBurst,
      this.#tokens + (now - this.#refilledAt) * limits.messagesPerSecond / 1000,
    );
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /**
   * One timer per connection: the auth deadline, then the idle deadline,
   * re-armed from the last frame when it fires early.
   */
  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const limits = this.#server.limits;
      if (this.#state === "auth" || this.#state === "verifying") {
        this.closeWith(
          RendezvousCloseCode.AUTH_TIMEOUT,
          `no valid auth within ${limits.authTimeout} ms`,
        );
        return;
      }
      const idle = Date.now() - this.#lastSeen;
      if (idle >= limits.idleTimeout) {
        this.closeWith(
          RendezvousCloseCode.IDLE_TIMEOUT,
          `no frame for ${limits.idleTimeout} ms`,
        );
      } else this.#arm(limits.idleTimeout - idle);
    }, ms);
  }

  /** Forgets the connection: once, at its first close. */
  #teardown(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#timer);
    const peer = this.#peer;
    if (peer === undefined) return;
    if (this.#server.byPeer.get(peer) === this) {
      this.#server.byPeer.delete(peer);
    }
    const member = this.#member;
    const onError = this.#server.onError;
    member.unregister(peer, this.id).catch(onError);
    const gone = JSON.stringify({ type: "gone", peer });
    for (const contact of this.#contacts) {
      member.forward({ to: contact, from: peer, frame: gone }).catch(onError);
    }
    this.#contacts.clear();
  }
}

/**
 * Checks an `auth` frame against the challenge: the key must be the peer
 * ID's and the signature must verify. Returns the peer ID, or `undefined`.
 */
async function verifyAuth(
  frame: Record<string, unknown>,
  host: string,
  nonce: string,
): Promise<string | undefined> {
  const { peer, key, sig } = frame;
  // Big enough for an RSA-4096 key and signature, and no bigger.
  if (
    typeof peer !== "string" || canonicalPeerId(peer) !== peer ||
    typeof key !== "string" || key.length > 2048 ||
    typeof sig !== "string" || sig.length > 2048
  ) return undefined;
  try {
    const publicKey = publicKeyFromProtobuf(fromBase64url(key));
    if (!peerIdFromPublicKey(publicKey).equals(peerIdFromString(peer))) {
      return undefined;
    }
    const valid = await publicKey.verify(
      authPayload(host, nonce, peer),
      fromBase64url(sig),
    );
    return valid ? peer : undefined;
  } catch {
    return undefined;
  }
}

function unavailable(reason: string): Response {
  return new Response(`${reason}\n`, { status: 503 });
}

/** Waits for `promise`, but at most `ms`. */
async function settleWithin(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
