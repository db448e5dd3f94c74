/**
 * The private-to-private (`/webrtc`) connection flow over any
 * {@linkcode SignalingChannel}: one SDP offer, one SDP answer, trickled ICE
 * candidates both ways, as libp2p/specs webrtc/webrtc.md gives it.
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
}

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
  const maxSdp = options.maxSdpLength ?? 64 * 1024;
  const filter = options.candidateFilter ?? (() => true);
  const connected = waitConnected(pc, signal);
  const stopReceiving = new AbortController();
  // Sends are not awaited one by one; a failed one fails the negotiation.
  let sendError: unknown;
  const send = (message: SignalingMessage) =>
    signaling.send(message, { signal }).catch((error) => sendError ??= error);

  pc.onicecandidate = (candidate) => {
    // Stop after connecting; end of candidates is sent as nothing, as js does.
    if (candidate && candidate.candidate !== "" && filter(candidate)) {
      void send({ type: "candidate", candidate });
    }
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
      const answer = await expect(signaling, "answer", signal, maxSdp);
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    } else {
      const offer = await expect(signaling, "offer", signal, maxSdp);
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      const answer = await pc.createAnswer();
      await signaling.send({ type: "answer", sdp: answer.sdp }, { signal });
      await pc.setLocalDescription(answer);
    }

    // Candidates until connected; the peer may close signalling once it is.
    const receiving = receiveCandidates(
      pc,
      signaling,
      AbortSignal.any([signal, stopReceiving.signal]),
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
    stopReceiving.abort();
    pc.onicecandidate = null;
    connected.catch(() => {});
  }
}

async function expect(
  signaling: SignalingChannel,
  type: "offer" | "answer",
  signal: AbortSignal,
  maxSdp: number,
): Promise<string> {
  const message = await signaling.receive({ signal });
  if (message === null) {
    throw new NegotiationError(`signalling closed before the SDP ${type}`);
  }
  if (message.type !== type) {
    throw new NegotiationError(`expected an SDP ${type}, got ${message.type}`);
  }
  if (message.sdp.length > maxSdp) {
    throw new NegotiationError(
      `SDP ${type} of ${message.sdp.length} characters exceeds ${maxSdp}`,
    );
  }
  return message.sdp;
}

async function receiveCandidates(
  pc: PeerConnection,
  signaling: SignalingChannel,
  signal: AbortSignal,
): Promise<void> {
  while (pc.connectionState !== "connected") {
    const message = await signaling.receive({ signal });
    if (message === null) return;
    if (message.type !== "candidate") {
      throw new NegotiationError(
        `expected an ICE candidate, got an SDP ${message.type}`,
      );
    }
    const candidate = message.candidate;
    // null and "" both mean end of candidates: nothing to add.
    if (candidate === null || candidate.candidate === "") continue;
    await pc.addIceCandidate(candidate);
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
