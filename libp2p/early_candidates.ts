/**
 * `/webrtc` answering: giving a dialer that sends its ICE candidates before
 * its offer the time to apply our answer before we check it.
 *
 * Such a dialer is `@libp2p/webrtc` 6 over node-datachannel (Node, or
 * Deno): it writes each candidate from the `icecandidate` event, and on
 * loopback they overtake its offer every time. Its libdatachannel hands a
 * remote description to its ICE agent before storing it, and its ICE agent
 * answers checks before it has one. So when our checks reach it before our
 * answer has (a check goes straight over UDP, the answer through the
 * relay), its ICE connects inside its `setRemoteDescription`, and DTLS on
 * its side fails ("certificate verify failed") or stalls a second (seen in
 * most dials without this). No change on our side but the timing of our
 * checks avoids that.
 *
 * So such a dialer's candidates are held until `delay` ms after our answer
 * went out: its own checks, sent once it has applied our answer, complete
 * ICE meanwhile whenever they can reach us, and the held candidates are
 * never needed. Only a dialer that cannot reach us directly waits. A dialer
 * whose first candidate comes after its offer (p2prtc, which reveals none
 * before the answer; browsers) is not held at all.
 *
 * @module
 */

import { raceSignal } from "race-signal";
import type {
  SignalingCallOptions,
  SignalingChannel,
  SignalingMessage,
} from "../core/signaling.ts";
import { NegotiationError } from "../core/negotiation.ts";

/** Options for {@linkcode holdEarlyCandidates}. */
export interface EarlyCandidatesOptions {
  /** How long after our answer the candidates are held, in ms. Default 1000. */
  delay?: number;
  /** The most candidates held before the offer; one more fails. Default 64. */
  maxHeld?: number;
}

/**
 * `channel`, for the answering side, with the dialer's candidates held as
 * the module documentation says. More than `maxHeld` candidates before the
 * offer fail the receive with {@linkcode NegotiationError}.
 */
export function holdEarlyCandidates(
  channel: SignalingChannel,
  options: EarlyCandidatesOptions = {},
): SignalingChannel {
  const delay = options.delay ?? 1000;
  const maxHeld = options.maxHeld ?? 64;
  const held: SignalingMessage[] = [];
  let offered = false;
  let early = false;
  let answeredAt: number | undefined;

  return {
    send(message, sendOptions) {
      if (message.type === "answer") answeredAt = performance.now();
      return channel.send(message, sendOptions);
    },
    async receive(
      receiveOptions?: SignalingCallOptions,
    ): Promise<SignalingMessage | null> {
      while (!offered) {
        const message = await channel.receive(receiveOptions);
        if (message?.type !== "candidate") {
          offered = true;
          return message;
        }
        if (held.length >= maxHeld) {
          throw new NegotiationError(
            `over ${maxHeld} ICE candidates before the SDP offer`,
          );
        }
        early = true;
        held.push(message);
      }
      if (early) {
        const since = answeredAt ?? performance.now();
        await sleep(since + delay - performance.now(), receiveOptions?.signal);
        early = false;
      }
      return held.shift() ?? await channel.receive(receiveOptions);
    },
    close: () => channel.close(),
    abort: (reason) => channel.abort(reason),
    [Symbol.asyncDispose]: () => channel[Symbol.asyncDispose](),
  };
}

/** Waits `ms` (nothing if not positive), or rejects when `signal` aborts. */
async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await raceSignal(
      new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
      signal,
    );
  } finally {
    clearTimeout(timer);
  }
}
