/**
 * `core/negotiation.ts` against a scripted peer connection, for orderings a
 * real stack produces only now and then: here each event comes exactly when
 * the test says. The flow on real stacks is in `negotiation_cases.ts`.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type {
  DataChannel,
  PeerConnection,
  PeerConnectionState,
  SessionDescription,
} from "../core/backend.ts";
import { INIT_CHANNEL_LABEL, negotiate } from "../core/negotiation.ts";
import { memorySignalingPair } from "../signaling/memory.ts";

/** The slice of a data channel the negotiation touches. */
class ScriptedChannel {
  readyState: DataChannel["readyState"] = "connecting";
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly label: string) {}

  close(): void {
    if (this.readyState === "closed" || this.readyState === "closing") return;
    this.readyState = "closing";
    queueMicrotask(() => this.closed());
  }

  opened(): void {
    this.readyState = "open";
    this.onopen?.();
  }

  closed(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.onclose?.();
  }
}

/**
 * A peer connection that connects once its remote description is applied,
 * running `script` with its channels first.
 */
function scriptedPeerConnection(
  script: (channels: ScriptedChannel[], connect: () => void) => void,
): PeerConnection {
  const channels: ScriptedChannel[] = [];
  let state: PeerConnectionState = "new";
  const pc = {
    get connectionState() {
      return state;
    },
    localDescription: null,
    remoteDescription: null,
    createDataChannel(label: string) {
      const channel = new ScriptedChannel(label);
      channels.push(channel);
      return channel as unknown as DataChannel;
    },
    createOffer: (): Promise<SessionDescription> =>
      Promise.resolve({ type: "offer", sdp: "v=0\r\n" }),
    createAnswer: (): Promise<SessionDescription> =>
      Promise.resolve({ type: "answer", sdp: "v=0\r\n" }),
    setLocalDescription: () => Promise.resolve(),
    setRemoteDescription() {
      queueMicrotask(() =>
        script(channels, () => {
          state = "connected";
          pc.onconnectionstatechange?.(state);
        })
      );
      return Promise.resolve();
    },
    addIceCandidate: () => Promise.resolve(),
    close() {
      state = "closed";
    },
    ondatachannel: null,
    onicecandidate: null,
    onconnectionstatechange: null as
      | ((state: PeerConnectionState) => void)
      | null,
  };
  return pc as unknown as PeerConnection;
}

Deno.test("negotiation: the answerer opening and closing init before the offerer is connected does not stall it", async () => {
  let init: ScriptedChannel | undefined;
  // As Chromium answering libdatachannel sometimes does: the init channel
  // opens and the peer closes it at once, and only then does this side
  // report "connected".
  const pc = scriptedPeerConnection((channels, connect) => {
    init = channels[0];
    init.opened();
    init.closed();
    setTimeout(connect, 0);
  });
  const [ours, theirs] = memorySignalingPair();
  const offering = negotiate(pc, ours, "offerer", { timeout: 5_000 });
  strictEqual((await theirs.receive())?.type, "offer");
  await theirs.send({ type: "answer", sdp: "v=0\r\n" });
  await theirs.close();
  await offering;
  strictEqual(init?.label, INIT_CHANNEL_LABEL);
  strictEqual(init?.readyState, "closed");
  // The offerer ended signalling cleanly.
  deepStrictEqual(await theirs.receive(), null);
});
