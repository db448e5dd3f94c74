/**
 * The `/webrtc` offer/answer flow (`core/negotiation.ts`) over the in-process
 * signalling pair, on a real backend: registered by each backend's test file
 * (node-datachannel allows one isolate per process, so its tests share one).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnection, PeerConnectionBackend } from "../core/backend.ts";
import { TimeoutError } from "../core/errors.ts";
import { generateIdentity } from "../core/identity.ts";
import { negotiate, NegotiationError } from "../core/negotiation.ts";
import { ping, PING_PROTOCOL } from "../core/ping.ts";
import type { SignalingChannel } from "../core/signaling.ts";
import { WebRTCTransport } from "../core/transport.ts";
import { WebRTCStream } from "../core/stream.ts";
import { memorySignalingPair } from "../signaling/memory.ts";
import { isLoopback, LOOPBACK } from "./conformance/connect.ts";
import { random, randomBytes } from "./random.ts";
import { candidatesFirst, recording } from "./signaling_wrappers.ts";
import { assertBytes, readAll, writeAndClose } from "./stream_helpers.ts";
import {
  type BackendPairMaker,
  backendPairTests,
} from "./peer_connection_helpers.ts";

/** Registers the negotiation cases for `label`, with backends from `make`. */
export function negotiationCases(
  label: string,
  make: BackendPairMaker,
  settle: (backends: PeerConnectionBackend[]) => Promise<void>,
): void {
  const test = backendPairTests(`negotiation (${label})`, make, settle);

  test(
    "offer, answer and candidates connect; a stream carries data; the offerer's candidates follow the answer",
    async (ba, bb) => {
      const log: string[] = [];
      await connectAndTransfer(ba, bb, {
        offerer: (channel) => recording(channel, log),
      });
      // What the offerer sent before the answer came: the offer alone.
      deepStrictEqual(log.slice(0, log.indexOf("received answer")), [
        "sent offer",
      ]);
    },
  );

  // The answerer's candidates before its answer, as @libp2p/webrtc sends
  // them on loopback every time: the offerer holds them until it has applied
  // the answer.
  test(
    "the answerer sends its candidates before its answer; they connect",
    async (ba, bb) => {
      const order: string[] = [];
      await connectAndTransfer(ba, bb, {
        answerer: (channel) => candidatesFirst(channel, order),
      });
      strictEqual(order[0], "candidate", order.join(", "));
      ok(order.includes("answer"));
    },
  );

  test(
    "two transports connect over /webrtc: peer ids, ping, 1 MiB echo",
    async (ba, bb) => {
      const [idA, idB] = await Promise.all([
        generateIdentity(),
        generateIdentity(),
      ]);
      await using a = new WebRTCTransport({
        backend: ba,
        identity: idA,
        bindAddress: "127.0.0.1",
      });
      await using b = new WebRTCTransport({
        backend: bb,
        identity: idB,
        bindAddress: "127.0.0.1",
      });
      b.handle("/echo/1.0.0", (s) => s.readable.pipeTo(s.writable));
      const [sa, sb] = memorySignalingPair();
      const options = { candidateFilter: isLoopback, timeout: 20_000 };
      const [ca, cb] = await Promise.all([
        a.connect(sa, { ...options, remotePeer: idB.peerId, role: "offerer" }),
        b.connect(sb, {
          ...options,
          remotePeer: idA.peerId.toString(),
          role: "answerer",
        }),
      ]);
      strictEqual(ca.remotePeer.toString(), idB.peerId.toString());
      strictEqual(cb.remotePeer.toString(), idA.peerId.toString());
      strictEqual(ca.remoteAddr, `/webrtc/p2p/${idB.peerId}`);
      strictEqual(ca.direction, "outbound");
      strictEqual(cb.direction, "inbound");
      ok(a.connections.has(ca) && b.connections.has(cb));
      const pinging = await cb.newStream(PING_PROTOCOL);
      ok((await ping(pinging)) >= 0);
      await pinging.close();
      const stream = await ca.newStream("/echo/1.0.0");
      const data = randomBytes(random(11), 1024 * 1024);
      const [, echoed] = await Promise.all([
        writeAndClose(stream, data),
        readAll(stream.readable),
      ]);
      assertBytes(echoed, data);
    },
  );

  test("an answer where an offer belongs fails with NegotiationError", async (ba) => {
    const b = ba.createPeerConnection(LOOPBACK);
    try {
      const [sa, sb] = memorySignalingPair();
      await sa.send({ type: "answer", sdp: "v=0\r\n" });
      await rejects(negotiate(b, sb, "answerer"), NegotiationError);
    } finally {
      b.close();
    }
  });

  test("signalling that closes early fails with NegotiationError", async (ba) => {
    const a = ba.createPeerConnection(LOOPBACK);
    try {
      const [sa, sb] = memorySignalingPair();
      const offering = negotiate(a, sa, "offerer", { timeout: 10_000 });
      ok((await sb.receive())?.type === "offer");
      await sb.close();
      await rejects(offering, NegotiationError);
    } finally {
      a.close();
    }
  });

  test("an oversized SDP is refused", async (ba) => {
    const b = ba.createPeerConnection(LOOPBACK);
    try {
      const [sa, sb] = memorySignalingPair();
      await sa.send({ type: "offer", sdp: "a".repeat(70_000) });
      await rejects(negotiate(b, sb, "answerer"), NegotiationError);
    } finally {
      b.close();
    }
  });

  test("a silent peer times out with TimeoutError and the peer sees an abort", async (ba) => {
    const a: PeerConnection = ba.createPeerConnection(LOOPBACK);
    try {
      const [sa, sb] = memorySignalingPair();
      await rejects(
        negotiate(a, sa, "offerer", { timeout: 200 }),
        TimeoutError,
      );
      // An abort is a reset: what was queued is dropped, the end is typed.
      await rejects(
        sb.receive(),
        (e: unknown) =>
          (e as { code?: string }).code === "ERR_SIGNALING_ABORTED",
      );
    } finally {
      a.close();
    }
  });
}

/** Wraps one side's signalling channel in a test. */
type Wrap = (channel: SignalingChannel) => SignalingChannel;

/**
 * Connects a peer connection of `ba` (offering) to one of `bb` over the
 * in-process signalling pair, each side's end wrapped as `wrap` says, and
 * sends 256 KiB over a data channel.
 */
async function connectAndTransfer(
  ba: PeerConnectionBackend,
  bb: PeerConnectionBackend,
  wrap: { offerer?: Wrap; answerer?: Wrap } = {},
): Promise<void> {
  const a = ba.createPeerConnection(LOOPBACK);
  const b = bb.createPeerConnection(LOOPBACK);
  try {
    const inbound = Promise.withResolvers<WebRTCStream>();
    b.ondatachannel = (channel) => {
      // The offerer's `init` channel is not a stream.
      if (channel.label === "init") channel.close();
      else inbound.resolve(new WebRTCStream(channel));
    };
    const [sa, sb] = memorySignalingPair();
    const options = { candidateFilter: isLoopback, timeout: 20_000 };
    await Promise.all([
      negotiate(a, wrap.offerer?.(sa) ?? sa, "offerer", options),
      negotiate(b, wrap.answerer?.(sb) ?? sb, "answerer", options),
    ]);
    strictEqual(a.connectionState, "connected");
    const outbound = new WebRTCStream(a.createDataChannel(""));
    const data = randomBytes(random(5), 256 * 1024);
    const [, received] = await Promise.all([
      writeAndClose(outbound, data),
      inbound.promise.then((s) => readAll(s.readable)),
    ]);
    assertBytes(received, data);
    (await inbound.promise).reset();
  } finally {
    a.close();
    b.close();
  }
}
