/**
 * `libp2p/early_candidates.ts`: the `/webrtc` answerer holding the
 * candidates of a dialer that sent them before its offer, over the
 * in-process signalling pair.
 */

import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import type { SignalingMessage } from "../core/signaling.ts";
import { NegotiationError } from "../core/negotiation.ts";
import { holdEarlyCandidates } from "../libp2p/early_candidates.ts";
import { memorySignalingPair } from "../signaling/memory.ts";
import { candidateMessage } from "./signaling_wrappers.ts";

const OFFER: SignalingMessage = { type: "offer", sdp: "v=0\r\n" };
const ANSWER: SignalingMessage = { type: "answer", sdp: "v=0\r\n" };

Deno.test("early candidates: a dialer's candidates sent before its offer come after our answer and the delay", async () => {
  const [ours, theirs] = memorySignalingPair();
  const held = holdEarlyCandidates(ours, { delay: 50 });
  await theirs.send(candidateMessage(1));
  await theirs.send(candidateMessage(2));
  await theirs.send(OFFER);
  await theirs.send(candidateMessage(3));
  deepStrictEqual(await held.receive(), OFFER);
  await held.send(ANSWER);
  deepStrictEqual(await theirs.receive(), ANSWER);
  deepStrictEqual(await held.receive(), candidateMessage(1));
  deepStrictEqual(await held.receive(), candidateMessage(2));
  deepStrictEqual(await held.receive(), candidateMessage(3));
  await theirs.close();
  strictEqual(await held.receive(), null);
});

Deno.test("early candidates: a dialer whose candidates follow its offer is not held", async () => {
  const [ours, theirs] = memorySignalingPair();
  // Held, this would wait a minute; the receive gives up after 5 s.
  const held = holdEarlyCandidates(ours, { delay: 60_000 });
  await theirs.send(OFFER);
  await theirs.send(candidateMessage(1));
  deepStrictEqual(await held.receive(), OFFER);
  await held.send(ANSWER);
  deepStrictEqual(
    await held.receive({ signal: AbortSignal.timeout(5_000) }),
    candidateMessage(1),
  );
});

Deno.test("early candidates: the wait for the delay ends with the receive's signal", async () => {
  const [ours, theirs] = memorySignalingPair();
  const held = holdEarlyCandidates(ours, { delay: 60_000 });
  await theirs.send(candidateMessage(1));
  await theirs.send(OFFER);
  deepStrictEqual(await held.receive(), OFFER);
  await held.send(ANSWER);
  // As the negotiation does once the connection is up.
  const stop = new AbortController();
  const receiving = held.receive({ signal: stop.signal });
  const reason = new Error("connected");
  stop.abort(reason);
  await rejects(receiving, (error) => error === reason);
});

Deno.test("early candidates: more than maxHeld before the offer fail, typed", async () => {
  const [ours, theirs] = memorySignalingPair();
  const held = holdEarlyCandidates(ours, { maxHeld: 3 });
  for (let n = 0; n < 4; n++) await theirs.send(candidateMessage(n));
  await rejects(
    held.receive(),
    (error) =>
      error instanceof NegotiationError &&
      error.code === "ERR_NEGOTIATION_FAILED",
  );
});
