/**
 * `/webrtc` signalling in the order libdatachannel needs when js-libp2p is
 * on the other side.
 *
 * libdatachannel checks the peer's DTLS certificate against the remote
 * description it is storing; when ICE completes inside
 * `setRemoteDescription` (because checks already succeeded before it), DTLS
 * can start and check against nothing, and the connection fails
 * ("certificate verify failed", "unknown CA"). So no ICE check may succeed
 * before the side applying the last description has applied it:
 *
 * - Received: `@libp2p/webrtc` 6 sends its ICE candidates from the
 *   `icecandidate` event without waiting for its SDP to be written, and
 *   node-datachannel reports them as soon as the description exists: on
 *   loopback they overtake its offer or answer every time. They are held
 *   and received after the SDP (a strict peer would fail here).
 * - Sent, as the offerer: our candidates, those inside our offer included,
 *   wait until the peer's answer has been applied, so the answerer cannot
 *   finish ICE with us before it reaches us.
 * - Received, as the answerer: the offerer's candidates (its offer's too)
 *   wait `answererDelay` ms after our answer has gone out. Meanwhile the
 *   offerer applies our answer and checks us, and ICE completes without
 *   them; were we to check first, the offerer would answer our checks,
 *   succeed its own the moment it applies our answer, and fail in DTLS.
 *
 * @module
 */

import type { IceCandidate } from "../core/backend.ts";
import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { NegotiationError } from "../core/negotiation.ts";

/** Options for {@linkcode sdpFirst}. */
export interface SdpFirstOptions {
  /** Which side this is; see the module doc for what each holds back. */
  role: "offerer" | "answerer";
  /**
   * As the answerer, how long after our answer the offerer's candidates are
   * held, in ms. Default 1000.
   */
  answererDelay?: number;
  /** The most candidates held each way; one more fails. Default 64. */
  maxHeld?: number;
}

/** A send held back until the peer's SDP has been applied. */
interface HeldSend {
  message: SignalingMessage;
  options: SignalingCallOptions | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * `channel`, with ICE candidates held back as the module doc says. Holding
 * more than `maxHeld` fails with {@linkcode NegotiationError}.
 */
export function sdpFirst(
  channel: SignalingChannel,
  options: SdpFirstOptions,
): SignalingChannel {
  const maxHeld = options.maxHeld ?? 64;
  const answererDelay = options.answererDelay ?? 1000;
  const received: SignalingMessage[] = [];
  const sending: HeldSend[] = [];
  let described = false;
  let applied = false;
  let answeredAt: number | undefined;
  const tooMany = (what: string) =>
    new NegotiationError(`over ${maxHeld} ICE candidates ${what}`);
  const receiveLater = (candidates: IceCandidate[]) => {
    if (received.length + candidates.length > maxHeld) {
      throw tooMany("received before the peer's SDP");
    }
    for (const candidate of candidates) {
      received.push({ type: "candidate", candidate });
    }
  };
  const hold = (
    message: SignalingMessage,
    sendOptions?: SignalingCallOptions,
  ): Promise<void> => {
    if (sending.length >= maxHeld) {
      return Promise.reject(tooMany("to send before the peer's SDP"));
    }
    return new Promise((resolve, reject) =>
      sending.push({ message, options: sendOptions, resolve, reject })
    );
  };

  return {
    send(message, sendOptions): Promise<void> {
      if (message.type === "answer") answeredAt = performance.now();
      if (options.role === "answerer" || applied) {
        return channel.send(message, sendOptions);
      }
      if (message.type === "candidate") return hold(message, sendOptions);
      const { sdp, candidates } = takeCandidates(message.sdp);
      const sent = channel.send({ type: message.type, sdp }, sendOptions);
      // The stack reports these again as it gathers them, or has; twice
      // is harmless, never is not.
      for (const candidate of candidates) {
        hold({ type: "candidate", candidate }, sendOptions).catch(() => {});
      }
      return sent;
    },
    async receive(
      receiveOptions?: SignalingCallOptions,
    ): Promise<SignalingMessage | null> {
      if (!described) {
        while (true) {
          const message = await channel.receive(receiveOptions);
          if (message?.type !== "candidate") {
            described = true;
            if (message === null) return null;
            const { sdp, candidates } = takeCandidates(message.sdp);
            receiveLater(candidates);
            return { type: message.type, sdp };
          }
          receiveLater(message.candidate ? [message.candidate] : []);
        }
      }
      if (!applied) {
        applied = true;
        for (const held of sending.splice(0)) {
          channel.send(held.message, held.options).then(
            held.resolve,
            held.reject,
          );
        }
      }
      if (options.role === "answerer" && answeredAt !== undefined) {
        await sleep(
          answeredAt + answererDelay - performance.now(),
          receiveOptions?.signal,
        );
      }
      return received.shift() ?? await channel.receive(receiveOptions);
    },
    close: () => channel.close(),
    abort(reason) {
      for (const held of sending.splice(0)) held.reject(reason);
      channel.abort(reason);
    },
    [Symbol.asyncDispose]: () => channel[Symbol.asyncDispose](),
  };
}

/** Waits `ms` (nothing if not positive), or rejects when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The SDP without its `a=candidate` and `a=end-of-candidates` lines, and
 * those candidates, each with the `a=mid` of its section.
 */
function takeCandidates(
  sdp: string,
): { sdp: string; candidates: IceCandidate[] } {
  const candidates: IceCandidate[] = [];
  const kept: string[] = [];
  let section: string[] = [];
  let mid: string | null = null;
  const settle = () => {
    for (const candidate of section) {
      candidates.push({ candidate, sdpMid: mid, sdpMLineIndex: null });
    }
    section = [];
  };
  for (const line of sdp.split(/(?<=\n)/)) {
    if (line.startsWith("m=")) {
      settle();
      mid = null;
    }
    if (line.startsWith("a=mid:")) mid = line.slice(6).trim();
    if (line.startsWith("a=candidate:")) section.push(line.slice(2).trim());
    else if (!line.startsWith("a=end-of-candidates")) kept.push(line);
  }
  settle();
  return { sdp: kept.join(""), candidates };
}
