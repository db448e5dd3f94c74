/**
 * Connects two peer connections, possibly of two backends, in this process
 * on loopback: offer and answer, trickled candidates, no ICE server, every
 * wait bounded by an `AbortSignal`.
 *
 * A test helper, not shipped.
 *
 * @module
 */

import type {
  DataChannel,
  IceCandidate,
  IceCredentials,
  PeerConnection,
  PeerConnectionBackend,
  PeerConnectionOptions,
  PeerConnectionState,
} from "../../core/backend.ts";
import { TimeoutError } from "../../core/errors.ts";

/** Host candidates on loopback only; nothing else is ever contacted. */
export const LOOPBACK: PeerConnectionOptions = { bindAddress: "127.0.0.1" };

/** How {@linkcode connect} sets the two sides up. */
export interface ConnectOptions {
  /** Bounds every wait; the connection must be up before it aborts. */
  signal: AbortSignal;
  /** Options for the offerer's peer connection (default {@linkcode LOOPBACK}). */
  offerer?: PeerConnectionOptions;
  /** Options for the answerer's peer connection (default {@linkcode LOOPBACK}). */
  answerer?: PeerConnectionOptions;
  /** ICE credentials the offerer applies with its offer. */
  offererCredentials?: IceCredentials;
  /** ICE credentials the answerer applies with its answer. */
  answererCredentials?: IceCredentials;
  /**
   * Hold each side's candidates until its gathering is complete, then hand
   * them to the other side before its remote description: the backend must
   * hold them back itself.
   */
  candidatesFirst?: boolean;
}

/** Two connected peer connections and the negotiated channel 0 of each. */
export interface Connected {
  /** The offerer. */
  a: PeerConnection;
  /** The answerer. */
  b: PeerConnection;
  /** The offerer's negotiated channel with id 0, open. */
  a0: DataChannel;
  /** The answerer's negotiated channel with id 0, open. */
  b0: DataChannel;
}

/** Closes everything it was given, whatever happens to each. */
export class Closer {
  #connections: PeerConnection[] = [];

  /** Remembers `pc` to close it later; returns it. */
  add(pc: PeerConnection): PeerConnection {
    this.#connections.push(pc);
    return pc;
  }

  /** Closes every peer connection added, in order. */
  closeAll(): void {
    for (const pc of this.#connections) {
      try {
        pc.close();
      } catch {
        // Closing is idempotent; a throw here must not hide the test's own.
      }
    }
  }
}

/**
 * Resolves with the first value `arm` hands to its callback, or rejects with
 * {@linkcode TimeoutError} when `signal` aborts. `arm` may return a function
 * that undoes what it set up; it runs either way.
 */
export function waitFor<T>(
  what: string,
  signal: AbortSignal,
  arm: (done: (value: T) => void, fail: (error: unknown) => void) =>
    | (() => void)
    | void,
): Promise<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  if (signal.aborted) {
    reject(new TimeoutError(`timed out waiting for ${what}`));
    return promise;
  }
  const abort = () => reject(new TimeoutError(`timed out waiting for ${what}`));
  signal.addEventListener("abort", abort, { once: true });
  const undo = arm(resolve, reject);
  return promise.finally(() => {
    signal.removeEventListener("abort", abort);
    undo?.();
  });
}

/** Resolves when `pc` reaches `connected`; rejects on `failed`/`closed`. */
export function whenConnected(
  pc: PeerConnection,
  signal: AbortSignal,
): Promise<void> {
  return waitFor<void>("the connection", signal, (done, fail) => {
    const check = (state: PeerConnectionState) => {
      if (state === "connected") done();
      else if (state === "failed" || state === "closed") {
        fail(new Error(`the connection went ${state}`));
      }
    };
    const previous = pc.onconnectionstatechange;
    pc.onconnectionstatechange = (state) => {
      previous?.(state);
      check(state);
    };
    check(pc.connectionState);
  });
}

/** Resolves when `channel` is open (at once if it already is). */
export function whenOpen(
  channel: DataChannel,
  signal: AbortSignal,
): Promise<void> {
  return waitFor<void>(
    `channel ${channel.id} to open`,
    signal,
    (done, fail) => {
      if (channel.readyState === "open") return done();
      if (channel.readyState !== "connecting") {
        return fail(new Error(`channel is ${channel.readyState}`));
      }
      channel.onopen = () => done();
    },
  );
}

/** Resolves when `channel` delivers `onclose` (at once if it is closed). */
export function whenClosed(
  channel: DataChannel,
  signal: AbortSignal,
): Promise<void> {
  return waitFor<void>(`channel ${channel.id} to close`, signal, (done) => {
    if (channel.readyState === "closed") return done();
    const previous = channel.onclose;
    channel.onclose = () => {
      previous?.();
      done();
    };
  });
}

/** Whether a candidate is a loopback one; anything else is dropped. */
export function isLoopback(candidate: IceCandidate): boolean {
  const address = candidate.candidate.split(" ", 5)[4];
  return address === "127.0.0.1" || address === "::1";
}

/** Collects a peer connection's candidates, to forward now or later. */
class Trickle {
  #queue: IceCandidate[] = [];
  #target: PeerConnection | null = null;
  #complete = Promise.withResolvers<void>();
  #errors: unknown[] = [];

  constructor(source: PeerConnection) {
    source.onicecandidate = (candidate) => {
      if (candidate === null) {
        // An empty candidate string is the end-of-candidates marker; the
        // backend must accept and ignore it.
        this.#push({ candidate: "", sdpMid: "0", sdpMLineIndex: 0 });
        this.#complete.resolve();
        return;
      }
      if (isLoopback(candidate)) this.#push(candidate);
    };
  }

  /** Resolves once the source has gathered everything. */
  complete(signal: AbortSignal): Promise<void> {
    return waitFor("candidate gathering", signal, (done) => {
      this.#complete.promise.then(done);
    });
  }

  /** Forwards everything held, and everything after, to `target`. */
  flowTo(target: PeerConnection): void {
    this.#target = target;
    const queued = this.#queue;
    this.#queue = [];
    for (const candidate of queued) this.#send(candidate);
  }

  /** The first error `addIceCandidate` reported, if any. */
  error(): unknown {
    return this.#errors[0];
  }

  #push(candidate: IceCandidate): void {
    if (this.#target === null) this.#queue.push(candidate);
    else this.#send(candidate);
  }

  #send(candidate: IceCandidate): void {
    this.#target!.addIceCandidate(candidate).catch((error) => {
      this.#errors.push(error);
    });
  }
}

/**
 * The local description of `pc` as sent to the peer. With `candidatesFirst`
 * its candidates are taken out, so only the trickled ones (held by the peer
 * until this description arrives) can connect.
 */
function described(pc: PeerConnection, options: ConnectOptions) {
  const description = pc.localDescription!;
  if (!options.candidatesFirst) return description;
  const sdp = description.sdp.replace(
    /^a=(candidate|end-of-candidates).*\r?\n/gm,
    "",
  );
  return { type: description.type, sdp };
}

/**
 * Creates a peer connection on each backend, the negotiated channel 0 on
 * both (libp2p's Noise channel, and what the offer negotiates), and connects
 * them: `a` offers, `b` answers. Every peer connection made is added to
 * `closer` before anything can fail.
 */
export async function connect(
  backendA: PeerConnectionBackend,
  backendB: PeerConnectionBackend,
  closer: Closer,
  options: ConnectOptions,
): Promise<Connected> {
  const { signal } = options;
  const a = closer.add(
    backendA.createPeerConnection(options.offerer ?? LOOPBACK),
  );
  const b = closer.add(
    backendB.createPeerConnection(options.answerer ?? LOOPBACK),
  );
  const fromA = new Trickle(a);
  const fromB = new Trickle(b);
  const a0 = a.createDataChannel("", { negotiated: true, id: 0 });
  const b0 = b.createDataChannel("", { negotiated: true, id: 0 });
  const connected = Promise.all([
    whenConnected(a, signal),
    whenConnected(b, signal),
  ]);
  // Nothing may reject unobserved while the signalling below is awaited.
  connected.catch(() => {});

  const offer = await a.createOffer();
  await a.setLocalDescription(offer, options.offererCredentials);
  if (options.candidatesFirst) {
    await fromA.complete(signal);
    fromA.flowTo(b);
  }
  await b.setRemoteDescription(described(a, options));
  if (!options.candidatesFirst) fromA.flowTo(b);

  const answer = await b.createAnswer();
  await b.setLocalDescription(answer, options.answererCredentials);
  if (options.candidatesFirst) {
    await fromB.complete(signal);
    fromB.flowTo(a);
  }
  await a.setRemoteDescription(described(b, options));
  if (!options.candidatesFirst) fromB.flowTo(a);

  await connected;
  await Promise.all([whenOpen(a0, signal), whenOpen(b0, signal)]);
  const error = fromA.error() ?? fromB.error();
  if (error !== undefined) throw error;
  return { a, b, a0, b0 };
}
