/**
 * `core/negotiation.ts` against a scripted peer connection, for orderings a
 * real stack produces only now and then: here each event comes exactly when
 * the test says. The flow on real stacks is in `negotiation_cases.ts`.
 */

import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import type {
  DataChannel,
  IceCandidate,
  PeerConnection,
  PeerConnectionState,
  SessionDescription,
} from "../core/backend.ts";
import {
  DEFAULT_MAX_EARLY_CANDIDATES,
  INIT_CHANNEL_LABEL,
  negotiate,
  NegotiationError,
} from "../core/negotiation.ts";
import { memorySignalingPair } from "../signaling/memory.ts";
import {
  candidateMessage,
  hostCandidate,
  recording,
} from "./signaling_wrappers.ts";

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
 * running `script` with its channels first. Descriptions applied and
 * candidates added are written to `log` in call order (`local:offer`,
 * `remote:answer`, `candidate:<candidate>`).
 */
function scriptedPeerConnection(
  script: (channels: ScriptedChannel[], connect: () => void) => void,
  log: string[] = [],
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
    setLocalDescription(description: SessionDescription) {
      log.push(`local:${description.type}`);
      return Promise.resolve();
    },
    setRemoteDescription(description: SessionDescription) {
      log.push(`remote:${description.type}`);
      queueMicrotask(() =>
        script(channels, () => {
          state = "connected";
          pc.onconnectionstatechange?.(state);
        })
      );
      return Promise.resolve();
    },
    addIceCandidate(candidate: IceCandidate) {
      log.push(`candidate:${candidate.candidate}`);
      return Promise.resolve();
    },
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

/** The log entry {@linkcode scriptedPeerConnection} writes for candidate n. */
function added(n: number): string {
  return `candidate:${hostCandidate(n).candidate}`;
}

/** What {@linkcode startOffering}'s log holds once the answer is applied. */
const ANSWERED = [
  "sent offer",
  "local:offer",
  "received answer",
  "remote:answer",
];

/**
 * An offerer negotiating over a channel recorded in `log`, whose offer the
 * peer (`theirs`) has received; it connects when `connect` is called, after
 * its answer is applied.
 */
async function startOffering(log: string[]) {
  let connect: (() => void) | undefined;
  const pc = scriptedPeerConnection((channels, c) => {
    channels[0].opened();
    connect = c;
  }, log);
  const [ours, theirs] = memorySignalingPair();
  const offering = negotiate(pc, recording(ours, log), "offerer", {
    timeout: 5_000,
  });
  strictEqual((await theirs.receive())?.type, "offer");
  return { pc, theirs, offering, connect: () => connect?.() };
}

Deno.test("negotiation: candidates that arrive before the offer are added once it is applied", async () => {
  const log: string[] = [];
  const pc = scriptedPeerConnection(
    (_, connect) => setTimeout(connect, 0),
    log,
  );
  const [ours, theirs] = memorySignalingPair();
  // As @libp2p/webrtc dialing does on loopback: its candidates overtake its
  // offer. Both forms of end of candidates count towards the bound and are
  // not added; exactly the bound is accepted.
  const early = DEFAULT_MAX_EARLY_CANDIDATES - 2;
  for (let n = 0; n < early; n++) await theirs.send(candidateMessage(n));
  await theirs.send({ type: "candidate", candidate: null });
  await theirs.send({
    type: "candidate",
    candidate: { candidate: "", sdpMid: "0", sdpMLineIndex: 0 },
  });
  await theirs.send({ type: "offer", sdp: "v=0\r\n" });
  const answering = negotiate(pc, ours, "answerer", { timeout: 5_000 });
  strictEqual((await theirs.receive())?.type, "answer");
  await answering;
  deepStrictEqual(log, [
    "remote:offer",
    ...Array.from({ length: early }, (_, n) => added(n)),
    "local:answer",
  ]);
  deepStrictEqual(await theirs.receive(), null);
});

Deno.test("negotiation: candidates that arrive before the answer are added once it is applied", async () => {
  const log: string[] = [];
  const pc = scriptedPeerConnection((channels, connect) => {
    channels[0].opened();
    setTimeout(connect, 0);
  }, log);
  const [ours, theirs] = memorySignalingPair();
  const offering = negotiate(pc, ours, "offerer", { timeout: 5_000 });
  strictEqual((await theirs.receive())?.type, "offer");
  // As @libp2p/webrtc answering does: candidates first, then the answer.
  await theirs.send(candidateMessage(1));
  await theirs.send(candidateMessage(2));
  await theirs.send({ type: "answer", sdp: "v=0\r\n" });
  await offering;
  deepStrictEqual(log, [
    "local:offer",
    "remote:answer",
    added(1),
    added(2),
  ]);
});

Deno.test("negotiation: more candidates before the SDP than the bound fail, typed", async () => {
  const log: string[] = [];
  const pc = scriptedPeerConnection(() => {}, log);
  const [ours, theirs] = memorySignalingPair();
  for (let n = 0; n <= DEFAULT_MAX_EARLY_CANDIDATES; n++) {
    await theirs.send(candidateMessage(n));
  }
  await rejects(
    negotiate(pc, ours, "answerer", { timeout: 5_000 }),
    (error) =>
      error instanceof NegotiationError &&
      error.code === "ERR_NEGOTIATION_FAILED" &&
      error.message.includes(`over ${DEFAULT_MAX_EARLY_CANDIDATES}`),
  );
  // Nothing was applied, and the peer sees the attempt aborted.
  deepStrictEqual(log, []);
  await rejects(
    theirs.receive(),
    (e: unknown) => (e as { code?: string }).code === "ERR_SIGNALING_ABORTED",
  );
});

Deno.test("negotiation: maxEarlyCandidates sets the bound", async () => {
  const pc = scriptedPeerConnection(() => {});
  const [ours, theirs] = memorySignalingPair();
  await theirs.send(candidateMessage(1));
  await theirs.send(candidateMessage(2));
  await rejects(
    negotiate(pc, ours, "answerer", {
      timeout: 5_000,
      maxEarlyCandidates: 1,
    }),
    NegotiationError,
  );
});

Deno.test("negotiation: the offerer sends its candidates once it has the answer and checks the answerer", async () => {
  const log: string[] = [];
  const { pc, theirs, offering, connect } = await startOffering(log);
  // Gathered at once, as a stack does after setLocalDescription: held.
  pc.onicecandidate?.(hostCandidate(7));
  pc.onicecandidate?.(null);
  await theirs.send({ type: "answer", sdp: "v=0\r\n" });
  await theirs.send(candidateMessage(1));
  deepStrictEqual(await theirs.receive(), candidateMessage(7));
  connect();
  await offering;
  deepStrictEqual(log, [
    ...ANSWERED,
    "received candidate",
    added(1),
    "sent candidate",
  ]);
});

Deno.test("negotiation: an offerer that gets no candidate with the answer sends its own after a bound", async () => {
  const log: string[] = [];
  const { pc, theirs, offering, connect } = await startOffering(log);
  pc.onicecandidate?.(hostCandidate(7));
  // An answerer that can only be reached through our candidates.
  await theirs.send({ type: "answer", sdp: "v=0\r\n" });
  deepStrictEqual(await theirs.receive(), candidateMessage(7));
  connect();
  await offering;
  deepStrictEqual(log, [...ANSWERED, "sent candidate"]);
});
