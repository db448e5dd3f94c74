/**
 * The private-to-private (`/webrtc`) connection flow over any
 * {@linkcode SignalingChannel}: one SDP offer, one SDP answer, trickled ICE
 * candidates both ways, as libp2p/specs webrtc/webrtc.md gives it.
 *
 * Candidates that arrive before the peer's offer or answer are held (at most
 * `maxEarlyCandidates`) and added once that description is applied: some
 * peers send them from the `icecandidate` event without waiting for their
 * SDP to be written, and on loopback they overtake it.
 *
 * The offerer's offer carries no candidate (backends' `createOffer` gives
 * none), and it sends its candidates only once it has applied the answer
 * and started checking the answerer: it has added one of the answerer's
 * candidates, or none came within {@linkcode REVEAL_FALLBACK_MS}. An ICE
 * agent answers checks before it has a remote description, and
 * libdatachannel can then connect ICE while still applying it and fail DTLS
 * (it checks the certificate against a description it has not stored yet);
 * and when the answerer, its DTLS client, connects first, it can lose the
 * ClientHello until it is resent a second later.
 *
 * The side that opened the signalling channel offers. It creates the `init`
 * data channel so the offer has something to negotiate, and closes it once
 * the connection is up. End of candidates may come as `null`, as an empty
 * candidate string, or not at all (what current js-libp2p does): all are
 * accepted.
 *
 * @module
 */

import type { IceCandidate, PeerConnection } from "./backend.ts";
import { P2prtcError, TimeoutError } from "./errors.ts";
import type { SignalingChannel, SignalingMessage } from "./signaling.ts";

/** The label of the channel an offerer creates so the offer has an m-line. */
export const INIT_CHANNEL_LABEL = "init";

/** Options for {@linkcode negotiate}. */
export interface NegotiationOptions {
  /** Aborts the negotiation. */
  signal?: AbortSignal;
  /** The time limit for the whole exchange, in milliseconds. Default 30 000. */
  timeout?: number;
  /**
   * Which local candidates to send; the others are dropped. Tests use it to
   * keep to loopback.
   */
  candidateFilter?: (candidate: IceCandidate) => boolean;
  /** The longest SDP accepted from the peer, in characters. Default 64 KiB. */
  maxSdpLength?: number;
  /**
   * The most ICE candidate messages held while waiting for the peer's offer
   * or answer; one more fails the negotiation. Default 64. The offerer also
   * keeps at most this many of its own until the answer; more are dropped.
   */
  maxEarlyCandidates?: number;
}

/** Default of {@linkcode NegotiationOptions.maxEarlyCandidates}. */
export const DEFAULT_MAX_EARLY_CANDIDATES = 64;

/**
 * How long after applying the answer an offerer that has none of the
 * answerer's candidates waits before sending its own anyway, in ms.
 */
export const REVEAL_FALLBACK_MS = 250;

/** The peer broke the signalling protocol or went away during it. */
export class NegotiationError extends P2prtcError {
  /** Makes the error; `message` says what went wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_NEGOTIATION_FAILED", message, options);
  }
}

/**
 * Connects `pc` to the peer at the other end of `signaling`, as the offerer
 * or as the answerer. Resolves once the connection is up and, for the
 * offerer, its `init` channel has opened (so data channels can open); the
 * signalling channel is then closed. On failure the signalling channel is
 * aborted and the error is thrown; closing `pc` is up to the caller.
 *
 * @throws {NegotiationError} if the peer sends the wrong message, closes
 * signalling early, or the connection fails.
 * @throws {TimeoutError} if the exchange takes longer than `timeout`.
 */
export async function negotiate(
  pc: PeerConnection,
  signaling: SignalingChannel,
  role: "offerer" | "answerer",
  options: NegotiationOptions = {},
): Promise<void> {
  const timeout = options.timeout ?? 30_000;
  const timer = AbortSignal.timeout(timeout);
  const signal = options.signal
    ? AbortSignal.any([options.signal, timer])
    : timer;
  const limits = {
    maxSdp: options.maxSdpLength ?? 64 * 1024,
    maxEarly: options.maxEarlyCandidates ?? DEFAULT_MAX_EARLY_CANDIDATES,
  };
  const filter = options.candidateFilter ?? (() => true);
  const connected = waitConnected(pc, signal);
  const stopReceiving = new AbortController();
  // Sends are not awaited one by one; a failed one fails the negotiation.
  let sendError: unknown;
  const send = (message: SignalingMessage) =>
    signaling.send(message, { signal }).catch((error) => sendError ??= error);

  // The offerer's own candidates, until it has started checking the answerer.
  let unsent: IceCandidate[] | null = role === "offerer" ? [] : null;
  let revealTimer: ReturnType<typeof setTimeout> | undefined;
  const reveal = () => {
    clearTimeout(revealTimer);
    for (const candidate of unsent ?? []) {
      void send({ type: "candidate", candidate });
    }
    unsent = null;
  };
  pc.onicecandidate = (candidate) => {
    // Stop after connecting; end of candidates is sent as nothing, as js does.
    if (!candidate || candidate.candidate === "" || !filter(candidate)) return;
    // A host has far fewer candidates than the bound; more are dropped.
    if (unsent === null) void send({ type: "candidate", candidate });
    else if (unsent.length < limits.maxEarly) unsent.push(candidate);
  };

  try {
    const init = role === "offerer"
      ? pc.createDataChannel(INIT_CHANNEL_LABEL)
      : undefined;
    // Watched from the start: the answerer closes it as soon as it arrives,
    // which can be before this side sees "connected"; events fired with no
    // handler set would be lost and the wait below would never end.
    const initClosed = init && openThenClose(init, signal);
    initClosed?.catch(() => {});
    if (role === "offerer") {
      const offer = await pc.createOffer();
      await signaling.send({ type: "offer", sdp: offer.sdp }, { signal });
      await pc.setLocalDescription(offer);
      const answer = await expect(signaling, "answer", signal, limits);
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      await addAll(pc, answer.early);
      if (answer.early.length > 0 || /^a=candidate:/m.test(answer.sdp)) {
        reveal();
      } else {
        revealTimer = setTimeout(reveal, REVEAL_FALLBACK_MS);
      }
    } else {
      const offer = await expect(signaling, "offer", signal, limits);
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      await addAll(pc, offer.early);
      const answer = await pc.createAnswer();
      await signaling.send({ type: "answer", sdp: answer.sdp }, { signal });
      await pc.setLocalDescription(answer);
    }

    // Candidates until connected; the peer may close signalling once it is.
    const receiving = receiveCandidates(
      pc,
      signaling,
      AbortSignal.any([signal, stopReceiving.signal]),
      reveal,
    );
    receiving.catch(() => {});
    await Promise.race([connected, receiving.then(() => connected)]);
    if (sendError) throw sendError;
    await initClosed;
    await signaling.close();
  } catch (error) {
    signaling.abort(error);
    throw translate(error, timer, timeout);
  } finally {
    clearTimeout(revealTimer);
    stopReceiving.abort();
    pc.onicecandidate = null;
    connected.catch(() => {});
  }
}

/**
 * Receives the peer's SDP `type`, and the candidates that came before it
 * (ends of candidates left out), which cannot be added until it is applied.
 */
async function expect(
  signaling: SignalingChannel,
  type: "offer" | "answer",
  signal: AbortSignal,
  limits: { maxSdp: number; maxEarly: number },
): Promise<{ sdp: string; early: IceCandidate[] }> {
  const early: IceCandidate[] = [];
  // Ends of candidates count too, so the loop is bounded in count as well.
  for (let held = 0;; held++) {
    const message = await signaling.receive({ signal });
    if (message === null) {
      throw new NegotiationError(`signalling closed before the SDP ${type}`);
    }
    if (message.type === "candidate") {
      if (held >= limits.maxEarly) {
        throw new NegotiationError(
          `over ${limits.maxEarly} ICE candidates before the SDP ${type}`,
        );
      }
      if (!isEnd(message.candidate)) early.push(message.candidate);
      continue;
    }
    if (message.type !== type) {
      throw new NegotiationError(
        `expected an SDP ${type}, got ${message.type}`,
      );
    }
    if (message.sdp.length > limits.maxSdp) {
      throw new NegotiationError(
        `SDP ${type} of ${message.sdp.length} characters exceeds ${limits.maxSdp}`,
      );
    }
    return { sdp: message.sdp, early };
  }
}

/** Whether a received candidate marks the end of candidates. */
function isEnd(candidate: IceCandidate | null): candidate is null {
  return candidate === null || candidate.candidate === "";
}

/** Adds the candidates held for the remote description, in arrival order. */
async function addAll(
  pc: PeerConnection,
  candidates: IceCandidate[],
): Promise<void> {
  for (const candidate of candidates) await pc.addIceCandidate(candidate);
}

/**
 * Adds the peer's trickled candidates until connected or signalling ends,
 * calling `handled` after each candidate message.
 */
async function receiveCandidates(
  pc: PeerConnection,
  signaling: SignalingChannel,
  signal: AbortSignal,
  handled: () => void,
): Promise<void> {
  while (pc.connectionState !== "connected") {
    const message = await signaling.receive({ signal });
    if (message === null) return;
    if (message.type !== "candidate") {
      throw new NegotiationError(
        `expected an ICE candidate, got an SDP ${message.type}`,
      );
    }
    // null and "" both mean end of candidates: nothing to add.
    if (!isEnd(message.candidate)) await pc.addIceCandidate(message.candidate);
    handled();
  }
}

function waitConnected(pc: PeerConnection, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const state = pc.connectionState;
      if (state === "connected") done(resolve);
      else if (state === "failed" || state === "closed") {
        done(() =>
          reject(new NegotiationError(`the peer connection ${state}`))
        );
      }
    };
    const onAbort = () => done(() => reject(signal.reason));
    const previous = pc.onconnectionstatechange;
    const done = (settle: () => void) => {
      signal.removeEventListener("abort", onAbort);
      pc.onconnectionstatechange = previous;
      settle();
    };
    pc.onconnectionstatechange = (state) => {
      previous?.(state);
      check();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    check();
  });
}

/**
 * Waits for the `init` channel to open, then closes it and waits for its
 * close, so its id is not reused while the peer still has it open (js does
 * the same).
 */
function openThenClose(
  channel: ReturnType<PeerConnection["createDataChannel"]>,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      channel.close();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    channel.onclose = () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    channel.onopen = () => channel.close();
    if (channel.readyState === "open") channel.close();
  });
}

function translate(
  error: unknown,
  timer: AbortSignal,
  timeout: number,
): unknown {
  if (timer.aborted && error === timer.reason) {
    return new TimeoutError(
      `WebRTC negotiation did not finish within ${timeout} ms`,
    );
  }
  return error;
}
