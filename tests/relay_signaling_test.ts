/**
 * The `/webrtc-signaling/0.0.1` channel (`signaling/relay.ts`) on its own,
 * over in-memory pipes and over streams on fake data channels: every message
 * both ways, the bytes js-libp2p puts on the wire, chunking, limits, garbage,
 * abort and the clean end. No WebRTC stack; `relay_signaling_cases.ts` runs
 * it on real ones.
 */

import {
  deepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import {
  MalformedSignalingMessageError,
  P2prtcError,
  SignalingAbortedError,
  SignalingMessageTooLargeError,
  StreamResetError,
} from "../core/errors.ts";
import { encodeLengthPrefixed } from "../core/length_prefixed.ts";
import type { SignalingMessage } from "../core/signaling.ts";
import { SignalingMessage as WireMessage } from "../proto/signaling.ts";
import {
  DEFAULT_MAX_SIGNALING_MESSAGE_SIZE,
  relaySignaling,
  SIGNALING_PROTOCOL,
} from "../signaling/relay.ts";
import { createChannelPair } from "./fake_channel.ts";
import { bytePipePair } from "./relay_signaling_cases.ts";
import { random, randomBytes } from "./random.ts";
import { delay, readAll, wrapPair } from "./stream_helpers.ts";

const encoder = new TextEncoder();

/** A candidate as `RTCIceCandidate.toJSON()` gives it. */
const CANDIDATE = {
  candidate:
    "candidate:842163049 1 udp 1677729535 127.0.0.1 50123 typ host generation 0 ufrag 4ZcD network-cost 999",
  sdpMid: "0",
  sdpMLineIndex: 0,
  usernameFragment: "4ZcD",
};

const MESSAGES: SignalingMessage[] = [
  { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n" },
  { type: "answer", sdp: "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n" },
  { type: "candidate", candidate: CANDIDATE },
  { type: "candidate", candidate: { candidate: CANDIDATE.candidate } },
  {
    type: "candidate",
    candidate: {
      candidate: CANDIDATE.candidate,
      sdpMid: null,
      sdpMLineIndex: null,
      usernameFragment: null,
    },
  },
  { type: "candidate", candidate: null },
];

/** The raw end of a pipe pair: what the test writes is what arrives. */
function rawPeer() {
  const pipes = bytePipePair();
  return {
    channel: relaySignaling(pipes.a),
    writer: pipes.b.writable.getWriter(),
    readable: pipes.b.readable,
  };
}

/** One wire message, prefixed: `type` and `data` as given, nothing added. */
function wire(type: number | undefined, data?: string | Uint8Array) {
  const body: number[] = [];
  if (type !== undefined) body.push(0x08, type);
  if (data !== undefined) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    // Lengths under 128 in these tests: one varint byte.
    body.push(0x12, bytes.length, ...bytes);
  }
  return new Uint8Array([body.length, ...body]);
}

/** Several byte arrays as one. */
function joined(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(parts.flatMap((part) => [...part]));
}

Deno.test("relay signalling: the protocol id is the spec's", () => {
  strictEqual(SIGNALING_PROTOCOL, "/webrtc-signaling/0.0.1");
  strictEqual(DEFAULT_MAX_SIGNALING_MESSAGE_SIZE, 64 * 1024);
});

Deno.test("relay signalling: every message type goes both ways, in order, then the end", async () => {
  const pipes = bytePipePair();
  const a = relaySignaling(pipes.a);
  const b = relaySignaling(pipes.b);
  for (const [from, to] of [[a, b], [b, a]]) {
    const sending = Promise.all(MESSAGES.map((m) => from.send(m)));
    for (const message of MESSAGES) {
      deepStrictEqual(await to.receive(), message);
    }
    await sending;
  }
  await a.close();
  strictEqual(await b.receive(), null);
  strictEqual(await b.receive(), null, "the end is sticky");
  // b can still send after a ended its half.
  await b.send(MESSAGES[1]);
  deepStrictEqual(await a.receive(), MESSAGES[1]);
  await b.close();
  strictEqual(await a.receive(), null);
});

Deno.test("relay signalling: the bytes on the wire are js-libp2p's", async () => {
  const { channel, readable } = rawPeer();
  const sdp = "v=0\r\n";
  await channel.send({ type: "offer", sdp });
  await channel.send({ type: "answer", sdp });
  await channel.send({ type: "candidate", candidate: CANDIDATE });
  await channel.send({ type: "candidate", candidate: null });
  const closing = channel.close();
  const bytes = await readAll(readable);
  await closing;
  // SDP_OFFER is 0 and still written (`08 00`): explicit presence.
  const offer = wire(0, sdp);
  deepStrictEqual(bytes.subarray(0, offer.length), offer);
  deepStrictEqual(bytes.subarray(0, 5), new Uint8Array([9, 8, 0, 0x12, 5]));
  let offset = offer.length;
  const answer = wire(1, sdp);
  deepStrictEqual(bytes.subarray(offset, offset + answer.length), answer);
  offset += answer.length;
  // The candidate: the JSON of the RTCIceCandidateInit, as js writes it.
  const length = bytes[offset] | ((bytes[offset + 1] & 0x7f) << 7);
  ok(bytes[offset] & 0x80, "a two-byte length");
  const decoded = WireMessage.decode(
    bytes.subarray(offset + 2, offset + 2 + length),
  );
  strictEqual(decoded.type, WireMessage.Type.ICE_CANDIDATE);
  deepStrictEqual(JSON.parse(decoded.data!), CANDIDATE);
  offset += 2 + length;
  // The end of candidates, as js-libp2p before 2025 wrote it.
  deepStrictEqual(bytes.subarray(offset), wire(2, "null"));
});

Deno.test("relay signalling: every end-of-candidates form js and browsers send is read as null", async () => {
  const { channel, writer } = rawPeer();
  const forms = [
    wire(2), // a candidate message without data
    wire(2, ""), // empty data
    wire(2, "null"), // JSON null (js-libp2p before 2025)
    wire(2, '""'), // JSON empty string
    wire(2, '{"candidate":"","sdpMid":"0","sdpMLineIndex":0}'), // a browser's end
    wire(2, '{"candidate":""}'),
  ];
  await writer.write(joined(forms));
  for (let i = 0; i < forms.length; i++) {
    deepStrictEqual(
      await channel.receive(),
      { type: "candidate", candidate: null },
      `form ${i}`,
    );
  }
  // And a real candidate as js-libp2p sends it.
  const json = JSON.stringify(CANDIDATE);
  await writer.write(
    encodeLengthPrefixed(
      WireMessage.encode({ type: WireMessage.Type.ICE_CANDIDATE, data: json }),
    ),
  );
  deepStrictEqual(await channel.receive(), {
    type: "candidate",
    candidate: CANDIDATE,
  });
  // proto3 without explicit presence leaves SDP_OFFER (0) out.
  await writer.write(wire(undefined, "v=0\r\n"));
  deepStrictEqual(await channel.receive(), { type: "offer", sdp: "v=0\r\n" });
  await writer.close();
  strictEqual(await channel.receive(), null);
});

Deno.test("relay signalling: messages split into 1-byte chunks and joined in one chunk decode exactly", async () => {
  const sender = rawPeer();
  const encoded = joined(
    MESSAGES.map((m) => encodeLengthPrefixed(WireMessage.encode(toWire(m)))),
  );
  // Byte by byte.
  const writing = (async () => {
    for (let i = 0; i < encoded.length; i++) {
      await sender.writer.write(encoded.subarray(i, i + 1));
    }
    // Then all of them again, in one chunk.
    await sender.writer.write(encoded);
    await sender.writer.close();
  })();
  for (const round of ["split", "joined"]) {
    for (const message of MESSAGES) {
      deepStrictEqual(await sender.channel.receive(), message, round);
    }
  }
  strictEqual(await sender.channel.receive(), null);
  await writing;
});

/** The wire form js-libp2p would write for `m`. */
function toWire(m: SignalingMessage): WireMessage {
  if (m.type === "candidate") {
    return {
      type: WireMessage.Type.ICE_CANDIDATE,
      data: JSON.stringify(m.candidate),
    };
  }
  return {
    type: m.type === "offer"
      ? WireMessage.Type.SDP_OFFER
      : WireMessage.Type.SDP_ANSWER,
    data: m.sdp,
  };
}

Deno.test("relay signalling: a 60 KB SDP crosses WebRTC-stream frames split into 1000-byte messages", async () => {
  const [ca, cb] = createChannelPair({ splitInto: 1000 });
  const streams = wrapPair(ca, cb);
  const a = relaySignaling(streams.a);
  const b = relaySignaling(streams.b);
  const sdp = "v=0\r\n" + "a=x-filler:0123456789\r\n".repeat(2500);
  await Promise.all([
    a.send({ type: "answer", sdp }),
    b.receive().then((m) => deepStrictEqual(m, { type: "answer", sdp })),
  ]);
  await Promise.all([a.close(), b.close()]);
  strictEqual(await a.receive(), null);
  strictEqual(await b.receive(), null);
  await Promise.all([streams.a.closed, streams.b.closed]);
});

Deno.test("relay signalling: an oversized prefix is refused before any body byte arrives", async () => {
  const { channel, writer, readable } = rawPeer();
  // One byte over the limit is announced; not one byte of it is sent, and
  // the stream stays open.
  const limit = DEFAULT_MAX_SIGNALING_MESSAGE_SIZE;
  await writer.write(new Uint8Array([0x81, 0x80, 0x04])); // limit + 1
  await rejects(
    channel.receive(),
    (e) =>
      e instanceof SignalingMessageTooLargeError &&
      e.code === "ERR_SIGNALING_MESSAGE_TOO_LARGE" &&
      e.size === limit + 1 && e.limit === limit,
  );
  // The peer learns of it: the stream was reset, not ended.
  await rejects(readable.getReader().read());
  // And the channel stays failed.
  await rejects(channel.receive(), SignalingMessageTooLargeError);
  await rejects(channel.send(MESSAGES[0]), SignalingMessageTooLargeError);

  // A prefix longer than any length under the limit needs (1 GiB here) is
  // refused as soon as its third byte shows it goes on.
  const second = rawPeer();
  await second.writer.write(new Uint8Array([0x80, 0x80, 0x80]));
  await rejects(
    second.channel.receive(),
    (e) => e instanceof SignalingMessageTooLargeError && e.size === Infinity,
  );
});

Deno.test("relay signalling: maxMessageSize bounds both directions, to the byte", async () => {
  const pipes = bytePipePair();
  const limit = 100;
  const a = relaySignaling(pipes.a, { maxMessageSize: limit });
  const b = relaySignaling(pipes.b, { maxMessageSize: limit });
  // 2 bytes of type, 2 of data tag and length, then the SDP.
  const fits = { type: "offer", sdp: "x".repeat(limit - 4) } as const;
  const over = { type: "offer", sdp: "x".repeat(limit - 3) } as const;
  await rejects(
    a.send(over),
    (e) =>
      e instanceof SignalingMessageTooLargeError && e.size === limit + 1 &&
      e.limit === limit,
  );
  // The refused send wrote nothing and left the channel usable.
  await a.send(fits);
  deepStrictEqual(await b.receive(), fits);
  // A sender with a higher limit: the receiver refuses from the prefix.
  const big = bytePipePair();
  const loose = relaySignaling(big.a);
  const strict = relaySignaling(big.b, { maxMessageSize: limit });
  await loose.send(over);
  await rejects(
    strict.receive(),
    (e) => e instanceof SignalingMessageTooLargeError && e.size === limit + 1,
  );
  await rejects(loose.receive(), SignalingAbortedError);
  throws(
    () => relaySignaling(bytePipePair().a, { maxMessageSize: -1 }),
    TypeError,
  );
});

Deno.test("relay signalling: garbage fails receive with a typed error and resets the stream", async () => {
  const cases: [string, Uint8Array][] = [
    ["not protobuf", new Uint8Array([0x03, 0xff, 0xff, 0xff])],
    ["an unknown type", wire(7, "x")],
    ["an offer without its SDP", wire(0)],
    ["an answer with an empty SDP", wire(1, "")],
    ["a candidate that is not JSON", wire(2, "candidate:1 1 udp")],
    ["a candidate that is a number", wire(2, "42")],
    ["a candidate that is an array", wire(2, "[]")],
    ["a candidate without its string", wire(2, '{"sdpMid":"0"}')],
    [
      "a candidate whose sdpMid is a number",
      wire(2, '{"candidate":"c","sdpMid":0}'),
    ],
    [
      "a candidate whose sdpMLineIndex is negative",
      wire(2, '{"candidate":"c","sdpMLineIndex":-1}'),
    ],
    [
      "a candidate whose usernameFragment is an object",
      wire(2, '{"candidate":"c","usernameFragment":{}}'),
    ],
  ];
  for (const [what, bytes] of cases) {
    const { channel, writer, readable } = rawPeer();
    await writer.write(bytes);
    await rejects(
      channel.receive(),
      (e) =>
        e instanceof MalformedSignalingMessageError &&
        e.code === "ERR_SIGNALING_MALFORMED",
      what,
    );
    await rejects(
      readable.getReader().read(),
      `${what}: the peer sees a reset`,
    );
  }
});

Deno.test("relay signalling: a stream that ends inside a message is malformed, not a clean end", async () => {
  for (const cut of [1, 3, 7]) {
    const { channel, writer } = rawPeer();
    await writer.write(wire(0, "v=0\r\n").subarray(0, cut));
    await writer.close();
    await rejects(
      channel.receive(),
      MalformedSignalingMessageError,
      `cut ${cut}`,
    );
  }
});

Deno.test("relay signalling: random bytes give messages or a typed error, never anything else", async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const next = random(seed);
    const { channel, writer } = rawPeer();
    const bytes = randomBytes(next, 1 + Math.floor(next() * 300));
    const writing = writer.write(bytes).then(() => writer.close()).catch(
      () => {},
    );
    try {
      // At most one message per byte.
      for (let i = 0; i <= bytes.length; i++) {
        if (await channel.receive() === null) break;
      }
    } catch (error) {
      ok(
        error instanceof MalformedSignalingMessageError ||
          error instanceof SignalingMessageTooLargeError,
        `seed ${seed}: ${error}`,
      );
    }
    await writing;
  }
});

Deno.test("relay signalling: abort is seen by the peer, typed, on both calls", async () => {
  const pipes = bytePipePair();
  const a = relaySignaling(pipes.a);
  const b = relaySignaling(pipes.b);
  await a.send(MESSAGES[0]);
  deepStrictEqual(await b.receive(), MESSAGES[0]);
  const pending = b.receive();
  const reason = new Error("gave up");
  a.abort(reason);
  a.abort(); // idempotent
  await rejects(pending, SignalingAbortedError);
  await rejects(b.send(MESSAGES[1]), SignalingAbortedError);
  await rejects(b.receive(), SignalingAbortedError);
  // The aborting side fails its own calls too, keeping its reason.
  await rejects(
    a.receive(),
    (e) => e instanceof SignalingAbortedError && e.cause === reason,
  );
  await rejects(a.send(MESSAGES[1]), SignalingAbortedError);
  await rejects(a.close(), SignalingAbortedError);
  // Disposal after an abort does not throw.
  await a[Symbol.asyncDispose]();
});

Deno.test("relay signalling: a receive given up on its signal loses nothing", async () => {
  const pipes = bytePipePair();
  const a = relaySignaling(pipes.a);
  const b = relaySignaling(pipes.b);
  const controller = new AbortController();
  const waiting = b.receive({ signal: controller.signal });
  controller.abort(new Error("not now"));
  await rejects(waiting, /not now/);
  await rejects(
    b.receive({ signal: AbortSignal.abort(new Error("already")) }),
    /already/,
  );
  await a.send(MESSAGES[2]);
  deepStrictEqual(await b.receive(), MESSAGES[2]);
  // Two receives at once each get one message.
  const both = Promise.all([b.receive(), b.receive()]);
  await a.send(MESSAGES[0]);
  await a.send(MESSAGES[1]);
  deepStrictEqual(await both, [MESSAGES[0], MESSAGES[1]]);
  await a.close();
  strictEqual(await b.receive(), null);
});

Deno.test("relay signalling: send honours its signal, close, and the queue bound", async () => {
  const pipes = bytePipePair();
  const a = relaySignaling(pipes.a, { maxQueuedMessages: 4 });
  await rejects(
    a.send(MESSAGES[0], { signal: AbortSignal.abort(new Error("no")) }),
    /no/,
  );
  // Nobody reads yet: once the pipe's few chunks are full, sends wait, and
  // past four waiting they are refused.
  const isFull = (e: unknown) =>
    e instanceof P2prtcError && e.code === "ERR_SIGNALING_QUEUE_FULL";
  const outcomes: unknown[] = [];
  const controllers: AbortController[] = [];
  for (let i = 0; i < 64 && !outcomes.some(isFull); i++) {
    const controller = new AbortController();
    controllers.push(controller);
    outcomes.push("waiting");
    a.send(MESSAGES[2], { signal: controller.signal }).then(
      () => outcomes[i] = "sent",
      (error) => outcomes[i] = error,
    );
    await delay(0);
  }
  ok(outcomes.some(isFull), "the queue bound was reached");
  strictEqual(outcomes.filter((o) => o === "waiting").length, 4);
  // A send given up on keeps its place: only the wait ends.
  const givenUp = outcomes.indexOf("waiting");
  controllers[givenUp].abort(new Error("stop waiting"));
  await delay(0);
  ok(/stop waiting/.test(String(outcomes[givenUp])));
  const accepted = outcomes.filter((o) => !isFull(o)).length;
  // The reader drains: every accepted send arrives, the given-up one too.
  const b = relaySignaling(pipes.b);
  let received = 0;
  const draining = (async () => {
    while (await b.receive() !== null) received++;
  })();
  await a.close();
  await draining;
  strictEqual(received, accepted);
  strictEqual(outcomes.filter((o) => o === "waiting").length, 0);
  await rejects(
    a.send(MESSAGES[0]),
    (e) => e instanceof P2prtcError && e.code === "ERR_SIGNALING_CLOSED",
  );
  await a.close(); // idempotent
});

Deno.test("relay signalling: a locked stream is refused", () => {
  const pipes = bytePipePair();
  pipes.a.writable.getWriter();
  throws(() => relaySignaling(pipes.a), TypeError);
  // The readable's lock was given back.
  ok(!pipes.a.readable.locked);
});

Deno.test("relay signalling: a cut pipe fails both ends with SignalingAbortedError", async () => {
  const pipes = bytePipePair();
  const a = relaySignaling(pipes.a);
  const b = relaySignaling(pipes.b);
  const pending = a.receive();
  const cause = new Error("relay gone");
  pipes.cut(cause);
  await rejects(
    pending,
    (e) => e instanceof SignalingAbortedError && e.cause === cause,
  );
  await rejects(b.send(MESSAGES[0]), SignalingAbortedError);
});

Deno.test("relay signalling: over WebRTC streams, close is FIN and abort is RESET", async () => {
  const [ca, cb] = createChannelPair({ splitInto: 7 });
  const streams = wrapPair(ca, cb);
  const a = relaySignaling(streams.a);
  const b = relaySignaling(streams.b);
  for (const message of MESSAGES) {
    await a.send(message);
    deepStrictEqual(await b.receive(), message);
  }
  await Promise.all([a.close(), b.receive().then((m) => strictEqual(m, null))]);
  // b aborts: a's stream sees a RESET from the peer.
  const [cc, cd] = createChannelPair();
  const more = wrapPair(cc, cd);
  const c = relaySignaling(more.a);
  const d = relaySignaling(more.b);
  const pending = c.receive();
  d.abort(new Error("dial failed"));
  await rejects(
    pending,
    (e) =>
      e instanceof SignalingAbortedError &&
      e.cause instanceof StreamResetError && e.cause.remote,
  );
  await b.close();
  await Promise.all([streams.a.closed, streams.b.closed]);
});
