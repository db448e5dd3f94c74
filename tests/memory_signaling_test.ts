import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import {
  memorySignalingPair,
  SignalingAbortedError,
} from "../signaling/memory.ts";

Deno.test("memory signalling: messages arrive in order, then the end", async () => {
  const [a, b] = memorySignalingPair();
  await a.send({ type: "offer", sdp: "o" });
  await a.send({
    type: "candidate",
    candidate: { candidate: "c", sdpMid: "0" },
  });
  await a.send({ type: "candidate", candidate: null });
  await a.close();
  deepStrictEqual(await b.receive(), { type: "offer", sdp: "o" });
  strictEqual((await b.receive())?.type, "candidate");
  deepStrictEqual(await b.receive(), { type: "candidate", candidate: null });
  strictEqual(await b.receive(), null);
  strictEqual(await b.receive(), null, "the end is sticky");
});

Deno.test("memory signalling: abort reaches the other end, typed", async () => {
  const [a, b] = memorySignalingPair();
  const pending = b.receive();
  a.abort(new Error("gave up"));
  await rejects(pending, SignalingAbortedError);
  await rejects(b.send({ type: "answer", sdp: "x" }), SignalingAbortedError);
});

Deno.test("memory signalling: a receive gives up on its signal", async () => {
  const [a, b] = memorySignalingPair();
  await rejects(
    b.receive({ signal: AbortSignal.timeout(10) }),
    (e: unknown) => (e as Error).name === "TimeoutError",
  );
  await a.send({ type: "offer", sdp: "later" });
  strictEqual((await b.receive())?.type, "offer");
});

Deno.test("memory signalling: a peer that never reads cannot grow the queue", async () => {
  const [a] = memorySignalingPair({ maxQueuedMessages: 3 });
  for (let i = 0; i < 3; i++) await a.send({ type: "offer", sdp: `${i}` });
  await rejects(
    a.send({ type: "offer", sdp: "one too many" }),
    (e: unknown) =>
      (e as { code?: string }).code === "ERR_SIGNALING_QUEUE_FULL",
  );
});
