/**
 * `WebRTCConnection` over the deterministic fake peer connection
 * (`fake_peer_connection.ts`): what the connection state means (ICE
 * `disconnected` is transient, `failed` and `closed` are the end), streams
 * the peer opens before the connection is ready (kept, bounded), and the
 * accept bound.
 *
 * The same behaviours over a real libdatachannel WebRTC-Direct connection
 * are in `direct_robustness_cases.ts`.
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import type { PeerConnectionState } from "../core/backend.ts";
import {
  ConnectionClosedError,
  type ConnectionOptions,
  type StreamHandler,
  WebRTCConnection,
} from "../core/connection.ts";
import { StreamErrorCode, StreamResetError } from "../core/errors.ts";
import { generateIdentity } from "../core/identity.ts";
import type { NegotiatedStream } from "../core/multistream.ts";
import {
  createPeerConnectionPair,
  type FakePeerConnection,
} from "./fake_peer_connection.ts";
import { random, randomBytes } from "./random.ts";
import {
  assertBytes,
  echoOnce,
  readAll,
  writeAndClose,
  writeAndCloseWrite,
} from "./stream_helpers.ts";

const ECHO = "/echo/1.0.0";
const echo: StreamHandler = (stream) => stream.readable.pipeTo(stream.writable);

interface Pair {
  pa: FakePeerConnection;
  pb: FakePeerConnection;
  /** The outbound side, ready. */
  a: WebRTCConnection;
  /** The inbound side, ready only if asked. */
  b: WebRTCConnection;
  /** Lets `b`'s inbound streams through. */
  readyB(): void;
}

async function connections(
  handlers: Record<string, StreamHandler>,
  options: { readyB?: boolean; b?: Partial<ConnectionOptions> } = {},
): Promise<Pair> {
  const [pa, pb] = createPeerConnectionPair();
  const [ida, idb] = await Promise.all([
    generateIdentity(),
    generateIdentity(),
  ]);
  const a = new WebRTCConnection(pa, {
    remoteAddr: "/fake/b",
    direction: "outbound",
  });
  const b = new WebRTCConnection(pb, {
    remoteAddr: "/fake/a",
    direction: "inbound",
    handlers: new Map(Object.entries(handlers)),
    ...options.b,
  });
  a.ready(idb.peerId);
  const readyB = () => b.ready(ida.peerId);
  if (options.readyB ?? true) readyB();
  return { pa, pb, a, b, readyB };
}

/** Reads exactly `length` bytes (or fails at the end of the stream). */
async function readExactly(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let offset = 0;
  while (offset < length) {
    const { value, done } = await reader.read();
    ok(!done, `the stream ended after ${offset} of ${length} bytes`);
    out.set(value, offset);
    offset += value.length;
  }
  return out;
}

/** Writes `data` and reads the echo of exactly as many bytes back. */
async function roundTrip(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  data: Uint8Array,
): Promise<void> {
  const [, back] = await Promise.all([
    writer.write(data),
    readExactly(reader, data.length),
  ]);
  assertBytes(back, data);
}

Deno.test("connection (fake): ICE disconnected is not the end; connected again, streams old and new work", async () => {
  const { pa, pb, a, b } = await connections({ [ECHO]: echo });
  const next = random(21);
  const stream = await a.newStream(ECHO);
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  await roundTrip(writer, reader, randomBytes(next, 40_000));

  const states: PeerConnectionState[] = ["disconnected", "connected"];
  for (const state of states) {
    pa.setState(state);
    pb.setState(state);
    ok(!a.isClosed && !b.isClosed, `closed on ${state}`);
    // The stream opened before goes on, and a new one opens.
    await roundTrip(writer, reader, randomBytes(next, 40_000));
    await echoOnce(a, randomBytes(next, 20_000));
  }
  // Twice more, as a flapping path does.
  for (let i = 0; i < 2; i++) {
    pa.setState("disconnected");
    pa.setState("connected");
  }
  await roundTrip(writer, reader, randomBytes(next, 1000));
  await writer.close();
  strictEqual((await reader.read()).done, true);
  await stream.closed;
  strictEqual(a.streams.size, 0);
  ok(!a.isClosed);
  a.close();
  b.close();
  await Promise.all([a.closed, b.closed]);
  strictEqual(pa.openChannels() + pb.openChannels(), 0);
});

for (const state of ["failed", "closed"] as const) {
  Deno.test(`connection (fake): ICE ${state} closes the connection; open streams fail, typed`, async () => {
    const held = Promise.withResolvers<NegotiatedStream>();
    const HOLD = "/hold/1.0.0";
    const { pa, pb, a, b } = await connections({
      [ECHO]: echo,
      // Keeps the stream open and unread until the test looks at it.
      [HOLD]: (stream) => held.resolve(stream),
    });
    const stream = await a.newStream(HOLD);
    const remote = await held.promise;
    const reader = stream.readable.getReader();
    const reading = reader.read();
    const pending = a.newStream(ECHO);

    pa.setState(state);
    ok(a.isClosed);
    await a.closed;
    await rejects(reading, StreamResetError);
    await rejects(
      stream.writable.getWriter().write(new Uint8Array(10)),
      StreamResetError,
    );
    await rejects(pending, StreamResetError);
    await rejects(a.newStream(ECHO), ConnectionClosedError);
    // The fake's close is an SCTP abort: the peer's streams end too.
    await rejects(readAll(remote.readable), StreamResetError);
    await stream.closed;
    strictEqual(a.streams.size, 0);
    strictEqual(pa.openChannels() + pb.openChannels(), 0);
    b.close();
    await b.closed;
  });
}

Deno.test("connection (fake): data sent before the connection is ready is kept for a slow handler", async () => {
  const gate = Promise.withResolvers<void>();
  const SLOW = "/slow/1.0.0";
  const { a, b, readyB } = await connections({
    [SLOW]: async (stream) => {
      await gate.promise;
      await stream.readable.pipeTo(stream.writable);
    },
  }, { readyB: false });
  const data = randomBytes(random(22), 300_000);
  // Lazy: the proposal and the data go out in the channel's first messages.
  const stream = await a.newStream(SLOW, { lazy: true });
  const reply = readAll(stream.readable);
  // FIN_ACK comes back once all of it sits in b's stream, still unread.
  await writeAndClose(stream, data);
  strictEqual(b.streams.size, 1);
  readyB();
  gate.resolve();
  assertBytes(await reply, data);
  a.close();
  b.close();
});

Deno.test("connection (fake): an early stream past its read bound is reset, RESOURCE_LIMIT_EXCEEDED; others go on", async () => {
  const { a, b, readyB } = await connections({ [ECHO]: echo }, {
    readyB: false,
    b: { streamOptions: { maxReadBufferSize: 64 * 1024 } },
  });
  const big = await a.newStream(ECHO, { lazy: true });
  const small = await a.newStream(ECHO, { lazy: true });
  await rejects(
    writeAndCloseWrite(big, new Uint8Array(256 * 1024)),
    (e: unknown) =>
      e instanceof StreamResetError && e.remote &&
      e.errorCode === StreamErrorCode.RESOURCE_LIMIT_EXCEEDED,
  );
  await rejects(readAll(big.readable), StreamResetError);
  const data = randomBytes(random(23), 10_000);
  await writeAndClose(small, data);
  readyB();
  assertBytes(await readAll(small.readable), data);
  a.close();
  b.close();
});

Deno.test("connection (fake): before the peer is authenticated, early streams are few and small; after, the full bounds apply", async () => {
  const gate = Promise.withResolvers<void>();
  const SLOW = "/slow/1.0.0";
  const { a, b, readyB } = await connections({
    [SLOW]: async (stream) => {
      await gate.promise;
      await stream.readable.pipeTo(stream.writable);
    },
  }, {
    readyB: false,
    b: { maxEarlyStreams: 2, maxEarlyReadBufferSize: 32 * 1024 },
  });
  const isLimit = (e: unknown) =>
    e instanceof StreamResetError &&
    e.errorCode === StreamErrorCode.RESOURCE_LIMIT_EXCEEDED;
  const [first, second, third] = await Promise.all(
    [0, 1, 2].map(() => a.newStream(SLOW, { lazy: true })),
  );
  // The third is past maxEarlyStreams; the second is past the early bound.
  await rejects(writeAndCloseWrite(third, Uint8Array.of(3)), isLimit);
  await rejects(writeAndCloseWrite(second, new Uint8Array(40_000)), isLimit);
  const small = randomBytes(random(24), 30_000);
  const echoed = readAll(first.readable);
  await writeAndCloseWrite(first, small);
  readyB();
  gate.resolve();
  assertBytes(await echoed, small);
  // Authenticated: a stream may now hold far more than the early bound.
  const gated = Promise.withResolvers<void>();
  const HELD = "/held/1.0.0";
  b.handle(HELD, async (stream) => {
    await gated.promise;
    await stream.readable.pipeTo(stream.writable);
  });
  const late = await a.newStream(HELD);
  const big = randomBytes(random(25), 512 * 1024);
  const back = readAll(late.readable);
  await writeAndCloseWrite(late, big);
  gated.resolve();
  assertBytes(await back, big);
  a.close();
  b.close();
});

Deno.test("connection (fake): streams past maxPendingInboundStreams are reset, not queued (checklist 23)", async () => {
  const limit = 4;
  const { a, b, readyB } = await connections({ [ECHO]: echo }, {
    readyB: false,
    b: { maxPendingInboundStreams: limit },
  });
  const streams = await Promise.all(
    Array.from({ length: limit + 3 }, () => a.newStream(ECHO, { lazy: true })),
  );
  const outcomes = await Promise.allSettled(
    streams.map((stream, i) => writeAndCloseWrite(stream, Uint8Array.of(i))),
  );
  // Channels arrive in order on the fake: the first `limit` are kept.
  outcomes.forEach((outcome, i) => {
    if (i < limit) strictEqual(outcome.status, "fulfilled", `stream ${i}`);
    else {
      strictEqual(outcome.status, "rejected", `stream ${i}`);
      const error = (outcome as PromiseRejectedResult).reason;
      ok(error instanceof StreamResetError, String(error));
      strictEqual(error.errorCode, StreamErrorCode.RESOURCE_LIMIT_EXCEEDED);
    }
  });
  strictEqual(b.streams.size, limit);
  readyB();
  for (let i = 0; i < limit; i++) {
    assertBytes(await readAll(streams[i].readable), Uint8Array.of(i));
  }
  // Negotiated streams no longer count: new ones get through.
  await echoOnce(a, Uint8Array.of(42));
  a.close();
  b.close();
});

Deno.test("connection (fake): newStream refuses bad protocol lists, typed, and leaves no channel open", async () => {
  // No negotiation timeout on the peer: it must not be what frees them.
  const { pa, pb, a, b } = await connections({ [ECHO]: echo }, {
    b: { negotiationTimeout: Infinity },
  });
  await rejects(a.newStream([ECHO, "/other/1.0.0"], { lazy: true }), TypeError);
  await rejects(a.newStream("no-slash\n"), TypeError);
  await rejects(a.newStream("bad\nid", { lazy: true }), TypeError);
  await Promise.all([...a.streams].map((stream) => stream.closed));
  strictEqual(a.streams.size, 0);
  await echoOnce(a, Uint8Array.of(7));
  a.close();
  b.close();
  strictEqual(pa.openChannels() + pb.openChannels(), 0);
});
