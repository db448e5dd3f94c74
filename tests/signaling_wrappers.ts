/**
 * Signalling for tests: channels wrapped to record what goes through them
 * or to send their SDP after their first candidate, and candidates to send.
 */

import type { IceCandidate } from "../core/backend.ts";
import type { SignalingChannel, SignalingMessage } from "../core/signaling.ts";

/** A loopback host candidate numbered `n`, on port 10000 + n. */
export function hostCandidate(n: number): IceCandidate {
  return {
    candidate: `candidate:${n} 1 UDP 2130706431 127.0.0.1 ${
      10_000 + n
    } typ host`,
    sdpMid: "0",
    sdpMLineIndex: 0,
  };
}

/** A signalling message carrying {@linkcode hostCandidate}`(n)`. */
export function candidateMessage(n: number): SignalingMessage {
  return { type: "candidate", candidate: hostCandidate(n) };
}

/**
 * `channel`, writing `sent <type>` and `received <type>` (`received end`
 * when the peer closed) to `log` for each message, in order.
 */
export function recording(
  channel: SignalingChannel,
  log: string[],
): SignalingChannel {
  return {
    send(message, options) {
      log.push(`sent ${message.type}`);
      return channel.send(message, options);
    },
    async receive(options) {
      const message = await channel.receive(options);
      log.push(`received ${message?.type ?? "end"}`);
      return message;
    },
    close: () => channel.close(),
    abort: (reason) => channel.abort(reason),
    [Symbol.asyncDispose]: () => channel[Symbol.asyncDispose](),
  };
}

/**
 * `channel`, with the SDP it sends held back until its first ICE candidate
 * has gone out, as a peer that sends candidates from the `icecandidate`
 * event without waiting for its SDP to be written (`@libp2p/webrtc` 6). For
 * an answerer: an offerer sends none before it has the answer. `order`
 * records the type of each message as it goes out.
 */
export function candidatesFirst(
  channel: SignalingChannel,
  order: string[],
): SignalingChannel {
  let held: SignalingMessage | undefined;
  return {
    send(message, options) {
      if (message.type !== "candidate") {
        // Resolved at once: the negotiation sends its SDP before it
        // applies it, and candidates only come once it is applied.
        held = message;
        return Promise.resolve();
      }
      order.push(message.type);
      const sent = channel.send(message, options);
      const sdp = held;
      held = undefined;
      if (sdp === undefined) return sent;
      return sent.then(() => {
        order.push(sdp.type);
        return channel.send(sdp, options);
      });
    },
    receive: (options) => channel.receive(options),
    close: () => channel.close(),
    abort: (reason) => channel.abort(reason),
    [Symbol.asyncDispose]: () => channel[Symbol.asyncDispose](),
  };
}
