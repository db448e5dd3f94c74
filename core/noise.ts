/**
 * The WebRTC-Direct Noise handshake on channel 0.
 *
 * WebRTC-Direct authenticates peers with one Noise XX handshake
 * (`Noise_XX_25519_ChaChaPoly_SHA256`) over the data channel with id 0. The
 * roles are inverted relative to the connection: the **listener** is the
 * Noise **initiator** and the **dialer** is the **responder**
 * ({@linkcode noiseRoleOf} maps one to the other). The prologue binds both
 * DTLS fingerprints (see `noise_prologue.ts`), so a DTLS man-in-the-middle
 * makes the handshake fail.
 *
 * The handshake itself is `@libp2p/noise`, the implementation js-libp2p
 * uses; this module adapts channel 0 to it. After the handshake nothing is
 * encrypted with Noise (DTLS protects the connection), so its cipher states
 * are dropped, and channel 0 is left open and idle: js and go never close
 * it, and closing it broke browser-to-rust connections (rust-libp2p#5986).
 *
 * Importing this module needs `--allow-env`: `@libp2p/noise` and its
 * logger read environment variables when they load.
 *
 * @example A handshake over an in-memory pair of channels
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity } from "./identity.ts";
 * import { noiseHandshake } from "./noise.ts";
 * import { WebRTCStream } from "./stream.ts";
 * import { createChannelPair } from "../tests/fake_channel.ts";
 *
 * const [dialerEnd, listenerEnd] = createChannelPair();
 * const dialer = await generateIdentity();
 * const listener = await generateIdentity();
 * // Both sides build it from the two DTLS fingerprints (noisePrologue).
 * const prologue = new Uint8Array(88);
 * const dialerChannel0 = new WebRTCStream(dialerEnd);
 * const listenerChannel0 = new WebRTCStream(listenerEnd);
 *
 * const [atDialer, atListener] = await Promise.all([
 *   noiseHandshake(dialerChannel0, {
 *     role: "responder",
 *     privateKey: dialer.privateKey,
 *     prologue,
 *     expectedPeer: listener.peerId,
 *   }),
 *   noiseHandshake(listenerChannel0, {
 *     role: "initiator",
 *     privateKey: listener.privateKey,
 *     prologue,
 *   }),
 * ]);
 * assert.ok(atDialer.remotePeer.equals(listener.peerId));
 * assert.ok(atListener.remotePeer.equals(dialer.peerId));
 * // Channel 0 stays open; here the test tears it down.
 * dialerChannel0.reset();
 * await Promise.all([dialerChannel0.closed, listenerChannel0.closed]);
 * ```
 *
 * @module
 */

import type {
  Logger,
  PeerId as Libp2pPeerId,
  PrivateKey as Libp2pPrivateKey,
  Upgrader,
} from "@libp2p/interface";
import { defaultLogger } from "@libp2p/logger";
import { noise } from "@libp2p/noise";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { AbstractMessageStream, type SendResult } from "@libp2p/utils";
import {
  NoiseHandshakeError,
  PeerIdMismatchError,
  TimeoutError,
} from "./errors.ts";
import type { WebRTCStream } from "./stream.ts";
import type { PeerId, PrivateKey } from "./identity.ts";

/**
 * A side's part in the Noise handshake. In WebRTC-Direct the listener is
 * the initiator and the dialer the responder.
 */
export type NoiseRole = "initiator" | "responder";

/** Options for {@linkcode noiseHandshake}. */
export interface NoiseHandshakeOptions {
  /**
   * This side's Noise role: `"initiator"` on the listener, `"responder"` on
   * the dialer (see {@linkcode noiseRoleOf}). Getting it backwards makes both
   * sides wait, or both send first, until the time limit.
   */
  role: NoiseRole;
  /** This node's libp2p identity key, which signs its handshake payload. */
  privateKey: PrivateKey;
  /**
   * The prologue, identical on both sides: `noisePrologue()` of the dialer's
   * and the listener's DTLS certificate fingerprints.
   */
  prologue: Uint8Array;
  /**
   * The peer the remote side must prove to be, such as the `/p2p/` of the
   * dialled multiaddr. Without it any authenticated peer is accepted, as a
   * listener does.
   */
  expectedPeer?: PeerId;
  /**
   * Abandons the handshake: it rejects with the signal's reason and channel 0
   * is reset.
   */
  signal?: AbortSignal;
  /**
   * The time limit for the whole handshake, in milliseconds. Default 10 000.
   * Past it the handshake rejects with {@linkcode TimeoutError}.
   */
  timeout?: number;
}

/** What a successful handshake established. */
export interface NoiseHandshakeResult {
  /** The peer ID the remote side proved it holds the key of. */
  remotePeer: Libp2pPeerId;
}

/** The default time limit of {@linkcode noiseHandshake}, in milliseconds. */
export const NOISE_HANDSHAKE_TIMEOUT = 10_000;

/**
 * The Noise role of a WebRTC-Direct dialer or listener: the listener
 * initiates, because as the DTLS server it is the first side able to send,
 * which saves half a round trip.
 */
export function noiseRoleOf(side: "dialer" | "listener"): NoiseRole {
  return side === "listener" ? "initiator" : "responder";
}

/**
 * Runs the Noise XX handshake over channel 0 and returns the peer it
 * authenticated.
 *
 * `channel0` must be a fresh {@linkcode WebRTCStream} over the negotiated
 * data channel with id 0, with its readable and writable unlocked (a
 * `TypeError` otherwise), and nothing else may use it during the
 * handshake. Each Noise message goes out as the data of one frame, as go and
 * js send them; incoming bytes are read as one stream, so messages split
 * across frames, or frames split across data-channel messages, are fine. No
 * Noise extensions are announced: the payload's `extensions` field is
 * empty, as js-libp2p sends it.
 *
 * On success channel 0 is left open and idle, with its readable and
 * writable unlocked; do not close it, and do not use it for anything else.
 * On failure it is reset, so the peer stops waiting; the caller should close
 * the connection as well.
 *
 * A responder learns the initiator's identity only from the last message,
 * so when the dialer rejects it (a wrong peer ID, say) the listener's
 * handshake has already succeeded; the listener finds out when the dialer
 * resets channel 0 or closes the connection.
 *
 * @throws {PeerIdMismatchError} if the peer proved an identity other than
 * `expectedPeer`.
 * @throws {NoiseHandshakeError} if the handshake failed: a message that does
 * not decrypt or verify (different prologues, a forged signature), bytes
 * that are not Noise, or channel 0 ending or reset during the handshake.
 * The error from `@libp2p/noise` or the stream is the `cause`.
 * @throws {TimeoutError} if the handshake took longer than `timeout`.
 * @throws the `signal`'s reason if it aborted.
 */
export async function noiseHandshake(
  channel0: WebRTCStream,
  options: NoiseHandshakeOptions,
): Promise<NoiseHandshakeResult> {
  const { role, prologue, expectedPeer, signal } = options;
  // Identities are made from real libp2p keys; the narrow type is for docs.
  const privateKey = options.privateKey as Libp2pPrivateKey;
  const timeout = options.timeout ?? NOISE_HANDSHAKE_TIMEOUT;
  signal?.throwIfAborted();

  const logger = defaultLogger();
  const encrypter = noise({ prologueBytes: prologue })({
    peerId: peerIdFromPrivateKey(privateKey),
    privateKey,
    logger,
    // Only consulted to announce stream muxers, which WebRTC never does:
    // skipStreamMuxerNegotiation keeps it unused, and were it asked, it
    // would have no muxers to offer.
    upgrader: noMuxers,
  });

  const adapter = new Channel0MessageStream(
    channel0,
    logger.forComponent("p2prtc:noise"),
    role,
  );
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new TimeoutError(`noise handshake timed out after ${timeout} ms`),
      ),
    timeout,
  );
  const combined = signal
    ? AbortSignal.any([signal, deadline.signal])
    : deadline.signal;

  try {
    const secure = role === "initiator"
      ? encrypter.secureOutbound.bind(encrypter)
      : encrypter.secureInbound.bind(encrypter);
    // No remotePeer is passed: the library compares public keys, which a
    // hash-based (RSA) peer ID does not carry, and its error would not tell
    // a wrong peer from a bad signature. The check below does both.
    const { remotePeer } = await secure(adapter, {
      signal: combined,
      skipStreamMuxerNegotiation: true,
    });
    // The last message must be on its way before channel 0 is handed back.
    await untilAborted(adapter.flushed(), combined);
    if (expectedPeer && !expectedPeer.equals(remotePeer)) {
      throw new PeerIdMismatchError(
        expectedPeer.toString(),
        remotePeer.toString(),
      );
    }
    await adapter.detach();
    // The encrypted stream the library returned, with its cipher states, is
    // dropped here: DTLS protects everything from now on.
    return { remotePeer };
  } catch (error) {
    await adapter.detach();
    channel0.reset();
    if (signal?.aborted) throw signal.reason;
    if (deadline.signal.aborted) throw deadline.signal.reason;
    if (error instanceof PeerIdMismatchError) throw error;
    throw new NoiseHandshakeError(
      `noise handshake failed as ${role}: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}

const noMuxers = {
  getStreamMuxers: () => new Map(),
} as unknown as Upgrader;

/** Rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/**
 * Channel 0 as the libp2p `MessageStream` that `@libp2p/noise` reads and
 * writes, for the length of the handshake only: {@linkcode detach} hands
 * the stream back, after which nothing is read from or sent on it.
 */
class Channel0MessageStream extends AbstractMessageStream {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pumping: Promise<void>;
  #lastWrite: Promise<void> = Promise.resolve();
  #detached = false;

  constructor(stream: WebRTCStream, log: Logger, role: NoiseRole) {
    super({ log, direction: role === "initiator" ? "outbound" : "inbound" });
    this.#reader = stream.readable.getReader();
    try {
      this.#writer = stream.writable.getWriter();
    } catch (error) {
      this.#reader.releaseLock();
      throw error;
    }
    this.#pumping = this.#pump();
  }

  /** Resolves once everything sent so far is handed to the channel. */
  flushed(): Promise<void> {
    return this.#lastWrite;
  }

  /**
   * Stops using the stream: the pending read is given up without consuming
   * anything, both locks are released, and later calls from the library
   * (which keeps listeners on this object) do nothing.
   */
  async detach(): Promise<void> {
    if (this.#detached) return;
    this.#detached = true;
    this.#reader.releaseLock();
    this.#writer.releaseLock();
    await this.#pumping;
  }

  async #pump(): Promise<void> {
    try {
      while (true) {
        const { done, value } = await this.#reader.read();
        if (this.#detached) return;
        if (done) {
          // The peer sent FIN mid-handshake: the library reads EOF and fails.
          this.onTransportClosed();
          return;
        }
        this.onData(value);
      }
    } catch (error) {
      // Releasing the lock in detach() rejects the pending read; that is the
      // expected way out, not a failure.
      if (!this.#detached) this.abort(error as Error);
    }
  }

  sendData(data: Parameters<AbstractMessageStream["sendData"]>[0]): SendResult {
    if (!this.#detached) {
      // One Noise message per send, so per frame: WebRTCStream splits only
      // above 16377 bytes, and handshake messages stay near 1 KiB even with
      // an RSA-4096 identity.
      const write = this.#writer.write(data.subarray());
      write.catch((error) => {
        if (!this.#detached) this.abort(error as Error);
      });
      this.#lastWrite = write;
    }
    return { sentBytes: data.byteLength, canSendMore: true };
  }

  sendReset(): void {
    // noiseHandshake resets channel 0 itself when the handshake fails. The
    // library also aborts when it fails to decrypt bytes that follow the
    // handshake, which must not touch channel 0, so this does nothing.
  }

  sendPause(): void {
    // Data channels have no flow control to pause; the handshake is small.
  }

  sendResume(): void {
    // See sendPause.
  }

  async close(): Promise<void> {
    // Never FIN channel 0 (rust-libp2p#5986); just let pending writes land.
    await this.#lastWrite.catch(() => {});
  }
}
