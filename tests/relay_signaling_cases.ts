/**
 * `/webrtc` over the spec's signalling protocol (`signaling/relay.ts`) on a
 * real backend: two transports connect with `relaySignaling` at each end of a
 * byte-stream pair, or over a `/webrtc-signaling/0.0.1` stream of a
 * connection they already share; a dial fed garbage fails with a typed error,
 * and a signalling path cut mid-handshake fails both sides; neither leaves a
 * handle open.
 *
 * Registered by each backend's test file: `werift_test.ts`, and
 * `relay_signaling_native_cases.ts` from `native_test.ts` (node-datachannel
 * allows one isolate per process). `bytePipePair` is shared with the pure
 * tests of `relay_signaling_test.ts`.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionBackend } from "../core/backend.ts";
import type { WebRTCConnection } from "../core/connection.ts";
import {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
} from "../core/errors.ts";
import { generateIdentity, type Identity } from "../core/identity.ts";
import { ping, PING_PROTOCOL } from "../core/ping.ts";
import { WebRTCTransport } from "../core/transport.ts";
import {
  relaySignaling,
  SIGNALING_PROTOCOL,
  type SignalingByteStream,
} from "../signaling/relay.ts";
import { isLoopback } from "./conformance/connect.ts";
import { random, randomBytes } from "./random.ts";
import { assertBytes, readAll, writeAndClose } from "./stream_helpers.ts";

/** What the pipes of {@linkcode bytePipePair} call for each chunk. */
export type ChunkHook = (
  direction: "a→b" | "b→a",
  chunk: Uint8Array,
) => void;

/** Two ends of an in-memory byte stream, and a way to cut it. */
export interface BytePipePair {
  /** One end. */
  a: SignalingByteStream;
  /** The other end. */
  b: SignalingByteStream;
  /**
   * Cuts both directions at once, as a relay that goes away: reads and
   * writes at both ends fail with `reason`.
   */
  cut(reason: unknown): void;
}

/**
 * Makes an in-memory byte stream between two ends: two pipes, each holding a
 * few chunks. `onChunk` sees every chunk as it passes, before it is
 * delivered, and may {@linkcode BytePipePair.cut} the pair.
 */
export function bytePipePair(onChunk?: ChunkHook): BytePipePair {
  const controllers: TransformStreamDefaultController<Uint8Array>[] = [];
  let cutReason: { reason: unknown } | undefined;
  const pipe = (direction: "a→b" | "b→a") =>
    new TransformStream<Uint8Array, Uint8Array>(
      {
        start: (controller) => void controllers.push(controller),
        transform: (chunk, controller) => {
          onChunk?.(direction, chunk);
          if (!cutReason) controller.enqueue(chunk);
        },
      },
      { highWaterMark: 1 },
      { highWaterMark: 16 },
    );
  const there = pipe("a→b");
  const back = pipe("b→a");
  return {
    a: { readable: back.readable, writable: there.writable },
    b: { readable: there.readable, writable: back.writable },
    cut(reason) {
      cutReason ??= { reason };
      for (const controller of controllers) controller.error(reason);
    },
  };
}

/** Registers the relay-signalling cases for `label`, with a backend from `make`. */
export function relaySignalingCases(
  label: string,
  make: () => Promise<PeerConnectionBackend>,
  settle: (backend: PeerConnectionBackend) => Promise<void>,
): void {
  // Each test gets two transports on one backend, `a` and `b`, closed after.
  const test = (
    name: string,
    fn: (a: WebRTCTransport, b: WebRTCTransport) => Promise<void>,
  ) =>
    Deno.test(`relay signalling (${label}): ${name}`, async () => {
      const backend = await make();
      try {
        const [idA, idB] = await Promise.all([
          generateIdentity(),
          generateIdentity(),
        ]);
        await using a = transportOf(backend, idA);
        await using b = transportOf(backend, idB);
        await fn(a, b);
      } finally {
        await settle(backend);
      }
      const left = backend.openHandles();
      deepStrictEqual(
        [left.peerConnections, left.dataChannels],
        [0, 0],
        "handles left open (peer connections, data channels)",
      );
    });

  test(
    "two transports connect over a byte-stream pair: peer ids, ping, 1 MiB echo",
    async (a, b) => {
      b.handle("/echo/1.0.0", (s) => s.readable.pipeTo(s.writable));
      const [ca, cb] = await connectOver(bytePipePair(), a, b);
      strictEqual(ca.remotePeer.toString(), b.identity.peerId.toString());
      strictEqual(cb.remotePeer.toString(), a.identity.peerId.toString());
      strictEqual(ca.direction, "outbound");
      strictEqual(cb.direction, "inbound");
      const pinging = await ca.newStream(PING_PROTOCOL);
      ok((await ping(pinging)) >= 0);
      await pinging.close();
      await echoMiB(ca, 0x5e1a);
    },
  );

  test(
    "a second connection is signalled over a /webrtc-signaling/0.0.1 stream of the first",
    async (a, b) => {
      b.handle("/echo/1.0.0", (s) => s.readable.pipeTo(s.writable));
      // What a relay's listener does: answer the streams peers open to it.
      const answered = Promise.withResolvers<WebRTCConnection>();
      answered.promise.catch(() => {});
      b.handle(SIGNALING_PROTOCOL, async (stream, conn) => {
        try {
          answered.resolve(
            await b.connect(relaySignaling(stream), {
              ...CONNECT_OPTIONS,
              remotePeer: conn.remotePeer,
              role: "answerer",
            }),
          );
        } catch (error) {
          answered.reject(error);
        }
      });
      // The first connection plays the relayed connection of the spec.
      const [first] = await connectOver(bytePipePair(), a, b);
      const stream = await first.newStream(SIGNALING_PROTOCOL);
      const second = await a.connect(relaySignaling(stream), {
        ...CONNECT_OPTIONS,
        remotePeer: b.identity.peerId,
        role: "offerer",
      });
      const inbound = await answered.promise;
      ok(second !== first);
      strictEqual(a.connections.size, 2);
      strictEqual(inbound.remotePeer.toString(), a.identity.peerId.toString());
      strictEqual(inbound.direction, "inbound");
      // The signalling stream was closed by both ends once connected.
      await stream.closed;
      first.close();
      await first.closed;
      await echoMiB(second, 0x5e1b);
    },
  );

  test(
    "garbage on the signalling stream mid-dial fails that dial, typed",
    async (a, b) => {
      const pipes = bytePipePair();
      const dialing = a.connect(relaySignaling(pipes.a), {
        ...CONNECT_OPTIONS,
        remotePeer: b.identity.peerId,
        role: "offerer",
      });
      dialing.catch(() => {});
      // The peer reads the offer, then answers with bytes that announce a
      // 5-byte message holding no valid protobuf field.
      const reader = pipes.b.readable.getReader();
      ok(!(await reader.read()).done, "the offer arrives");
      const writer = pipes.b.writable.getWriter();
      await writer.write(new Uint8Array([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]));
      await rejects(dialing, MalformedSignalingMessageError);
      strictEqual(a.connections.size, 0);
      // The dialer reset the stream: the peer's reads fail, not end.
      await rejects(drain(reader));
      writer.releaseLock();
    },
  );

  test(
    "a signalling path cut mid-handshake fails both sides, typed",
    async (a, b) => {
      // The relay goes away as the answer reaches it: the offerer never gets
      // it, and the answerer has already applied its own.
      const pipes = bytePipePair((direction) => {
        if (direction === "b→a") pipes.cut(new Error("the relay went away"));
      });
      const results = await Promise.allSettled(
        connecting(pipes, a, b),
      );
      for (const result of results) {
        strictEqual(result.status, "rejected");
        const reason = (result as PromiseRejectedResult).reason;
        ok(
          reason instanceof SignalingAbortedError,
          `expected SignalingAbortedError, got ${reason}`,
        );
        ok(reason instanceof P2prtcError);
      }
      strictEqual(a.connections.size, 0);
      strictEqual(b.connections.size, 0);
    },
  );
}

const CONNECT_OPTIONS = { candidateFilter: isLoopback, timeout: 20_000 };

/** `a` offers and `b` answers, with relay signalling at each end of `pipes`. */
function connecting(
  pipes: BytePipePair,
  a: WebRTCTransport,
  b: WebRTCTransport,
): [Promise<WebRTCConnection>, Promise<WebRTCConnection>] {
  return [
    a.connect(relaySignaling(pipes.a), {
      ...CONNECT_OPTIONS,
      remotePeer: b.identity.peerId,
      role: "offerer",
    }),
    b.connect(relaySignaling(pipes.b), {
      ...CONNECT_OPTIONS,
      remotePeer: a.identity.peerId,
      role: "answerer",
    }),
  ];
}

/** Both connections of {@linkcode connecting}, once both are up. */
function connectOver(
  pipes: BytePipePair,
  a: WebRTCTransport,
  b: WebRTCTransport,
): Promise<[WebRTCConnection, WebRTCConnection]> {
  return Promise.all(connecting(pipes, a, b));
}

function transportOf(
  backend: PeerConnectionBackend,
  identity: Identity,
): WebRTCTransport {
  return new WebRTCTransport({ backend, identity, bindAddress: "127.0.0.1" });
}

/** Echoes 1 MiB over `/echo/1.0.0` on `conn` and checks it byte for byte. */
async function echoMiB(conn: WebRTCConnection, seed: number): Promise<void> {
  const stream = await conn.newStream("/echo/1.0.0");
  const data = randomBytes(random(seed), 1024 * 1024);
  const [, echoed] = await Promise.all([
    writeAndClose(stream, data),
    readAll(stream.readable),
  ]);
  assertBytes(echoed, data);
}

/** Reads until the end; rejects if the stream fails instead. */
async function drain(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
  while (!(await reader.read()).done) {
    // Whatever else the dialer sent is not looked at.
  }
}
