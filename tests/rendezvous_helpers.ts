/**
 * Helpers for the WebSocket rendezvous tests: a server on loopback, and a
 * raw peer that speaks the wire protocol frame by frame (to play a
 * well-behaved peer whose frames the test controls, or a hostile one).
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey as Libp2pPrivateKey } from "@libp2p/interface";
import { type Identity, libp2pPrivateKey } from "../core/identity.ts";
import { TimeoutError } from "../core/errors.ts";
import {
  type RendezvousHandler,
  rendezvousHandler,
  type RendezvousServerOptions,
} from "../signaling/rendezvous_server.ts";
import { authPayload, toBase64url } from "../signaling/rendezvous_protocol.ts";

/** Every wait in these tests is bounded by this. */
export const STEP_MS = 20_000;

/** A rendezvous server on 127.0.0.1, and its WebSocket URL. */
export interface Rendezvous extends AsyncDisposable {
  /** `ws://127.0.0.1:<port>`. */
  url: string;
  /** `127.0.0.1:<port>`, what clients sign. */
  host: string;
  /** The handler, for its connection count. */
  handler: RendezvousHandler;
}

/** Starts a rendezvous server on loopback, on a free port. */
export function startRendezvous(
  options: RendezvousServerOptions = {},
): Rendezvous {
  const handler = rendezvousHandler(options);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    url: `ws://${host}`,
    host,
    handler,
    async [Symbol.asyncDispose]() {
      await handler.close();
      await server.shutdown();
    },
  };
}

/** How a raw peer's socket closed. */
export interface Closed {
  code: number;
  reason: string;
}

/**
 * A WebSocket to the rendezvous driven frame by frame. Frames are queued as
 * they come; {@linkcode RawPeer.next} takes them in order.
 */
export class RawPeer implements AsyncDisposable {
  readonly ws: WebSocket;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<Closed>;
  readonly #frames: Record<string, unknown>[] = [];
  #waiter: (() => void) | undefined;
  #announced: Closed | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.onclose = (event) => {
        // The server announces its code in a frame first, as the client
        // reads it (see signaling/websocket.ts).
        const lost = event.code === 0 || event.code === 1005 ||
          event.code === 1006;
        resolve(
          lost && this.#announced
            ? this.#announced
            : { code: event.code, reason: event.reason },
        );
        this.#waiter?.();
      };
    });
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "close") {
        this.#announced = { code: frame.code, reason: frame.reason };
      } else this.#frames.push(frame);
      this.#waiter?.();
    };
  }

  /** Opens a socket to `url` and waits until it is open. */
  static async open(url: string): Promise<RawPeer> {
    const ws = new WebSocket(url);
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`could not open ${url}`));
    });
    return peer;
  }

  /**
   * Opens a socket and authenticates as `identity`: the normal way unless
   * `forge` changes what is sent.
   */
  static async authenticated(
    url: string,
    identity: Identity,
    host: string,
  ): Promise<RawPeer> {
    const peer = await RawPeer.open(url);
    const challenge = await peer.next();
    peer.send(await authFrame(identity, host, String(challenge.nonce)));
    const ready = await peer.next();
    if (ready.type !== "ready") {
      throw new Error(`not ready: ${JSON.stringify(ready)}`);
    }
    return peer;
  }

  /** Sends a frame (an object as JSON, a string as is). */
  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The next frame; rejects if the socket closes first, or after STEP_MS. */
  async next(): Promise<Record<string, unknown>> {
    const deadline = AbortSignal.timeout(STEP_MS);
    while (this.#frames.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error("the socket closed");
      }
      if (deadline.aborted) throw new TimeoutError("no frame came");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.#frames.shift()!;
  }

  /** The next frame that is not a pong. */
  async nextNotPong(): Promise<Record<string, unknown>> {
    while (true) {
      const frame = await this.next();
      if (frame.type !== "pong") return frame;
    }
  }

  /** Closes the socket and waits for it. */
  async close(): Promise<Closed> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    return await this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close().then(() => {});
  }
}

/**
 * An `auth` frame for `nonce`, as an honest client of `identity` sends it to
 * `host`.
 */
export async function authFrame(
  identity: Identity,
  host: string,
  nonce: string,
): Promise<Record<string, string>> {
  const key = libp2pPrivateKey(identity) as Libp2pPrivateKey;
  const peer = identity.peerId.toString();
  return {
    type: "auth",
    peer,
    key: toBase64url(publicKeyToProtobuf(key.publicKey)),
    sig: toBase64url(await key.sign(authPayload(host, nonce, peer))),
  };
}

/** `promise`, bounded by STEP_MS: a test that goes wrong fails, not hangs. */
export function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`timed out: ${what}`)),
        STEP_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Waits, bounded by STEP_MS, until `condition` holds. */
export function until(condition: () => boolean, what: string): Promise<void> {
  return bounded(
    (async () => {
      while (!condition()) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })(),
    what,
  );
}
