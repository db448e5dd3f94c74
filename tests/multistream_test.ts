/**
 * multistream-select over the deterministic fake channel: both roles through
 * WebRTCStream, and the answerer against a raw peer that writes exact bytes
 * (lazy peers, split messages, garbage, oversize messages, silence).
 */

import {
  deepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import {
  InvalidMultistreamMessageError,
  MultistreamMessageTooLargeError,
  ProtocolNegotiationError,
  StreamErrorCode,
  StreamResetError,
  TimeoutError,
} from "../core/errors.ts";
import {
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
} from "../core/framing.ts";
import {
  handle,
  type NegotiatedStream,
  PROTOCOL_ID,
  select,
  selectLazy,
} from "../core/multistream.ts";
import { WebRTCStream } from "../core/stream.ts";
import {
  createChannelPair,
  type FakeDataChannel,
  type FakeLinkOptions,
} from "./fake_channel.ts";
import { random, randomBytes } from "./random.ts";
import {
  assertBytes,
  isSettled,
  readAll,
  tick,
  wrapPair,
} from "./stream_helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** A message built by hand, independently of the module under test. */
function msg(s: string): Uint8Array {
  const body = text(`${s}\n`);
  const prefix: number[] = [];
  let n = body.length;
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  prefix.push(n);
  return cat(new Uint8Array(prefix), body);
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const HEADER = msg(PROTOCOL_ID);

function fakePair(link: FakeLinkOptions = {}) {
  const [ca, cb] = createChannelPair(link);
  return { ...wrapPair(ca, cb), ca, cb };
}

/**
 * A peer that speaks the framing by hand on one end of a fake pair: it sends
 * exact data frames and collects what arrives, data and flags apart.
 */
class RawPeer {
  readonly channel: FakeDataChannel;
  readonly frames: Frame[] = [];
  #data: Uint8Array[] = [];
  readonly #decoder = new FrameDecoder();

  constructor(channel: FakeDataChannel) {
    this.channel = channel;
    channel.onmessage = (bytes) =>
      this.#decoder.push(bytes, (frame) => {
        if (frame.message?.length) this.#data.push(frame.message.slice());
        if (frame.flag !== undefined) {
          this.frames.push({ flag: frame.flag, errorCode: frame.errorCode });
        }
      });
  }

  /** Every data byte received so far. */
  get data(): Uint8Array {
    return cat(...this.#data);
  }

  /** One data frame as ONE channel message, prefix and body together. */
  send(bytes: Uint8Array): void {
    this.channel.send(encodeFrame({ message: bytes }));
  }

  sendFlag(flag: number): void {
    this.channel.send(encodeFrame({ flag }));
  }

  /** Waits (a bounded number of turns) until `done` holds. */
  async until(done: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 200 && !done(); i++) await tick();
    ok(done(), `timed out waiting for ${what}`);
  }

  async untilReset(errorCode?: number): Promise<void> {
    await this.until(
      () => this.frames.some((f) => f.flag === Flag.RESET),
      "RESET",
    );
    const reset = this.frames.find((f) => f.flag === Flag.RESET)!;
    strictEqual(reset.errorCode, errorCode, "the RESET's error code");
  }
}

/** A WebRTCStream on one end of a fake pair and a raw peer on the other. */
function rawPair(link: FakeLinkOptions = {}) {
  const [ca, cb] = createChannelPair(link);
  const raw = new RawPeer(ca);
  const stream = new WebRTCStream(cb);
  return { raw, stream, ca, cb };
}

/** Reads `n` bytes from the front of `readable`, then lets it go. */
async function readBytes(
  readable: ReadableStream<Uint8Array>,
  n: number,
): Promise<Uint8Array> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  return cat(...chunks);
}

async function writeAll(
  stream: NegotiatedStream,
  data: Uint8Array,
): Promise<void> {
  const writer = stream.writable.getWriter();
  await writer.write(data);
  await writer.close();
}

const isReset = (remote: boolean, errorCode?: number) => (error: unknown) =>
  error instanceof StreamResetError && error.remote === remote &&
  error.errorCode === errorCode;

Deno.test("multistream: select and handle agree on the first proposal", async () => {
  const { a, b } = fakePair();
  const [out, inb] = await Promise.all([
    select(a, ["/echo/1.0.0"]),
    handle(b, ["/other/1.0.0", "/echo/1.0.0"]),
  ]);
  strictEqual(out.protocol, "/echo/1.0.0");
  strictEqual(inb.protocol, "/echo/1.0.0");
  // No wrapper in the data path, and every lock given back.
  strictEqual(out.readable, a.readable);
  strictEqual(out.writable, a.writable);
  strictEqual(inb.readable, b.readable);
  ok(!a.readable.locked && !a.writable.locked);
  ok(!b.readable.locked && !b.writable.locked);
  await out.confirmed;

  await writeAll(out, text("ping"));
  strictEqual(str(await readAll(inb.readable)), "ping");
  await writeAll(inb, text("pong"));
  strictEqual(str(await readAll(out.readable)), "pong");
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: the opener's first bytes are the header and the proposal, in data frames", async () => {
  const { a, b, ca } = fakePair();
  const selecting = select(a, ["/proto/id"]);
  await tick();
  const first = new FrameDecoder();
  const payloads: Uint8Array[] = [];
  for (const message of ca.sent) {
    first.push(message, (f) => f.message && payloads.push(f.message.slice()));
  }
  const expected = cat(
    new Uint8Array([0x13]),
    text("/multistream/1.0.0\n"),
    new Uint8Array([0x0a]),
    text("/proto/id\n"),
  );
  strictEqual(payloads.length, 1, "header and proposal go out in one frame");
  assertBytes(payloads[0], expected);
  // A small frame goes out as one channel message.
  strictEqual(ca.sent.length, 1);
  const inb = await handle(b, ["/proto/id"]);
  const out = await selecting;
  await Promise.all([out.close(), inb.close()]);
  await Promise.all([a.closed, b.closed]);
});

Deno.test("multistream: the opener falls back to its next protocol after na", async () => {
  const { a, b, ca, cb } = fakePair();
  const [out, inb] = await Promise.all([
    select(a, ["/echo/2.0.0", "/echo/1.0.0"]),
    handle(b, ["/echo/1.0.0"]),
  ]);
  strictEqual(out.protocol, "/echo/1.0.0");
  strictEqual(inb.protocol, "/echo/1.0.0");
  const sentBy = (c: FakeDataChannel) => {
    const d = new FrameDecoder();
    const parts: Uint8Array[] = [];
    for (const m of c.sent) {
      d.push(m, (f) => f.message && parts.push(f.message.slice()));
    }
    return cat(...parts);
  };
  assertBytes(
    sentBy(ca),
    cat(HEADER, msg("/echo/2.0.0"), msg("/echo/1.0.0")),
  );
  assertBytes(sentBy(cb), cat(HEADER, msg("na"), msg("/echo/1.0.0")));

  await Promise.all([writeAll(out, text("a")), writeAll(inb, text("b"))]);
  strictEqual(str(await readAll(inb.readable)), "a");
  strictEqual(str(await readAll(out.readable)), "b");
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: all refused: a typed error, and a reset both sides see", async () => {
  const { a, b } = fakePair();
  const [out, inb] = await Promise.allSettled([
    select(a, ["/x/1", "/y/1"]),
    handle(b, ["/z/1"]),
  ]);
  strictEqual(out.status, "rejected");
  const error = (out as PromiseRejectedResult).reason;
  ok(error instanceof ProtocolNegotiationError);
  strictEqual(error.code, "ERR_PROTOCOL_NEGOTIATION_FAILED");
  deepStrictEqual(error.protocols, ["/x/1", "/y/1"]);
  strictEqual(inb.status, "rejected");
  ok(
    isReset(true, StreamErrorCode.PROTOCOL_NEGOTIATION_FAILED)(
      (inb as PromiseRejectedResult).reason,
    ),
  );
  await rejects(a.readable.getReader().read(), isReset(false, 0x1000));
  await Promise.all([a.closed, b.closed]);
});

Deno.test("multistream: a lazy peer's header, proposal and data in ONE frame are all read", async () => {
  const { raw, stream } = rawPair();
  raw.send(cat(HEADER, msg("/echo/1.0.0"), text("hello ")));
  const inb = await handle(stream, ["/echo/1.0.0"]);
  strictEqual(inb.protocol, "/echo/1.0.0");
  raw.send(text("world"));
  raw.sendFlag(Flag.FIN);
  strictEqual(str(await readAll(inb.readable)), "hello world");
  assertBytes(raw.data, cat(HEADER, msg("/echo/1.0.0")));

  const closing = inb.closeWrite();
  await raw.until(() => raw.frames.some((f) => f.flag === Flag.FIN), "FIN");
  raw.sendFlag(Flag.FIN_ACK);
  await closing;
  await stream.closed;
  ok(raw.frames.some((f) => f.flag === Flag.FIN_ACK), "our FIN was acked");
});

Deno.test("multistream: a lazy peer's bytes split into 1-byte channel messages are all read", async () => {
  const { raw, stream } = rawPair({ splitInto: 1 });
  const data = randomBytes(random(7), 5000);
  // Prefix and body as two messages, each then cut into single bytes.
  const frame = encodeFrame({
    message: cat(HEADER, msg("/a"), msg("/b/1.0.0"), data),
  });
  raw.channel.send(frame.subarray(0, 2));
  raw.channel.send(frame.subarray(2));
  raw.sendFlag(Flag.FIN);
  const inb = await handle(stream, ["/b/1.0.0"]);
  assertBytes(await readAll(inb.readable), data);
  assertBytes(raw.data, cat(HEADER, msg("na"), msg("/b/1.0.0")));
  stream.reset();
  await stream.closed;
});

Deno.test("multistream: messages split over 1-byte data frames are reassembled", async () => {
  const { raw, stream } = rawPair();
  const bytes = cat(HEADER, msg("/split/1.0.0"), text("tail"));
  for (const byte of bytes) raw.send(new Uint8Array([byte]));
  raw.sendFlag(Flag.FIN);
  const inb = await handle(stream, ["/split/1.0.0"]);
  strictEqual(str(await readAll(inb.readable)), "tail");
  stream.reset();
  await stream.closed;
});

Deno.test("multistream: the answer and the first data in one frame reach the opener's app", async () => {
  const { raw, stream } = rawPair();
  const selecting = select(stream, ["/req/1.0.0"]);
  await raw.until(() => raw.data.length > 0, "the proposal");
  assertBytes(raw.data, cat(HEADER, msg("/req/1.0.0")));
  raw.send(cat(HEADER, msg("/req/1.0.0"), text("response")));
  raw.sendFlag(Flag.FIN);
  const out = await selecting;
  strictEqual(str(await readAll(out.readable)), "response");
  out.reset();
  await stream.closed;
});

Deno.test("multistream: full negotiation with fallback over 1-byte channel messages", async () => {
  const { a, b } = fakePair({ splitInto: 1 });
  const [out, inb] = await Promise.all([
    select(a, ["/none", "/also-none", "/yes/1.0.0"]),
    handle(b, (id) => id.startsWith("/yes/")),
  ]);
  strictEqual(out.protocol, "/yes/1.0.0");
  strictEqual(inb.protocol, "/yes/1.0.0");
  const data = randomBytes(random(3), 20_000);
  await Promise.all([writeAll(out, data), writeAll(inb, data)]);
  assertBytes(await readAll(inb.readable), data);
  assertBytes(await readAll(out.readable), data);
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: ls is answered with the list, or na for a predicate", async () => {
  {
    const { raw, stream } = rawPair();
    raw.send(cat(HEADER, msg("ls")));
    const handling = handle(stream, ["/a/1", "/b/22"]);
    const listing = cat(msg("/a/1"), msg("/b/22"));
    const expected = cat(
      HEADER,
      new Uint8Array([listing.length + 1]),
      listing,
      text("\n"),
    );
    await raw.until(() => raw.data.length >= expected.length, "the listing");
    assertBytes(raw.data, expected);
    raw.send(msg("/b/22"));
    strictEqual((await handling).protocol, "/b/22");
    stream.reset();
    await stream.closed;
  }
  {
    const { raw, stream } = rawPair();
    raw.send(cat(HEADER, msg("ls"), msg("/a/1")));
    const inb = await handle(stream, (id) => id === "/a/1");
    assertBytes(raw.data, cat(HEADER, msg("na"), msg("/a/1")));
    inb.reset();
    await stream.closed;
  }
});

Deno.test("multistream: an oversize message is a typed error and a reset", async () => {
  const cases: [string, Uint8Array, number][] = [
    ["2000 bytes announced", cat(HEADER, new Uint8Array([0xd0, 0x0f])), 2000],
    ["a runaway varint", new Uint8Array([0xff, 0xff, 0xff, 0xff]), Infinity],
    ["1025 bytes, just past the limit", msg("/".repeat(1024)), 1025],
  ];
  for (const [name, bytes, size] of cases) {
    const { raw, stream } = rawPair();
    raw.send(bytes);
    await rejects(handle(stream, ["/p"]), (e: unknown) => {
      ok(e instanceof MultistreamMessageTooLargeError, name);
      strictEqual(e.code, "ERR_MULTISTREAM_MESSAGE_TOO_LARGE");
      strictEqual(e.size, size, name);
      strictEqual(e.limit, 1024);
      return true;
    });
    await raw.untilReset(StreamErrorCode.PROTOCOL_VIOLATION);
    await stream.closed;
  }
  // A smaller limit by option; and the opener checks answers the same way.
  const { raw, stream } = rawPair();
  const selecting = select(stream, ["/p"], { maxMessageSize: 32 });
  raw.send(cat(HEADER, msg("x".repeat(40))));
  await rejects(selecting, MultistreamMessageTooLargeError);
  await raw.untilReset(StreamErrorCode.PROTOCOL_VIOLATION);
  await stream.closed;
});

Deno.test("multistream: garbage from the peer is a typed error and a reset", async () => {
  const cases: [string, Uint8Array][] = [
    ["another version", msg("/multistream/2.0.0")],
    ["a proposal before the header", msg("/echo/1.0.0")],
    ["no trailing newline", cat(new Uint8Array([5]), text("abcde"))],
    ["not UTF-8", new Uint8Array([3, 0xff, 0xfe, 0x0a])],
    ["an empty message", new Uint8Array([0])],
    ["a bad proposal", cat(HEADER, new Uint8Array([2, 0xc3, 0x0a]))],
  ];
  for (const [name, bytes] of cases) {
    const { raw, stream } = rawPair();
    raw.send(bytes);
    await rejects(handle(stream, ["/echo/1.0.0"]), (e: unknown) => {
      ok(e instanceof InvalidMultistreamMessageError, name);
      strictEqual(e.code, "ERR_INVALID_MULTISTREAM_MESSAGE");
      return true;
    });
    await raw.untilReset(StreamErrorCode.PROTOCOL_VIOLATION);
    await stream.closed;
  }
  // The opener refuses an answer that is neither its proposal nor na.
  const { raw, stream } = rawPair();
  const selecting = select(stream, ["/echo/1.0.0"]);
  raw.send(cat(HEADER, msg("/echo/9.9.9")));
  await rejects(selecting, InvalidMultistreamMessageError);
  await raw.untilReset(StreamErrorCode.PROTOCOL_VIOLATION);
  await stream.closed;
});

Deno.test("multistream: the peer ending the stream before agreeing is a typed error", async () => {
  {
    const { raw, stream } = rawPair();
    raw.send(cat(HEADER, msg("/unknown")));
    raw.sendFlag(Flag.FIN);
    await rejects(handle(stream, ["/echo/1.0.0"]), (e: unknown) => {
      ok(e instanceof ProtocolNegotiationError);
      deepStrictEqual(e.protocols, ["/unknown"]);
      return true;
    });
    await raw.untilReset(StreamErrorCode.PROTOCOL_NEGOTIATION_FAILED);
    await stream.closed;
  }
  {
    // A message cut short by the end is garbage, not a clean end.
    const { raw, stream } = rawPair();
    raw.send(cat(HEADER, new Uint8Array([10]), text("/abc")));
    raw.sendFlag(Flag.FIN);
    await rejects(handle(stream, ["/abc"]), InvalidMultistreamMessageError);
    await stream.closed;
  }
  {
    const { raw, stream } = rawPair();
    const selecting = select(stream, ["/echo/1.0.0"]);
    raw.send(HEADER);
    raw.sendFlag(Flag.FIN);
    await rejects(selecting, ProtocolNegotiationError);
    await raw.untilReset(StreamErrorCode.PROTOCOL_NEGOTIATION_FAILED);
    await stream.closed;
  }
});

Deno.test("multistream: abort and timeout are typed errors and reset the stream", async () => {
  {
    // A silent peer and a signal.
    const { raw, stream } = rawPair();
    const controller = new AbortController();
    const handling = handle(stream, ["/p"], { signal: controller.signal });
    await tick();
    ok(!(await isSettled(handling)));
    const reason = new Error("given up");
    controller.abort(reason);
    await rejects(handling, (e) => e === reason);
    await raw.untilReset(undefined);
    await stream.closed;
    ok(!stream.readable.locked && !stream.writable.locked, "locks released");
  }
  {
    // An already aborted signal: nothing is sent but the reset.
    const { raw, stream, cb } = rawPair();
    const signal = AbortSignal.abort();
    await rejects(
      select(stream, ["/p"], { signal }),
      (e: unknown) => e instanceof DOMException && e.name === "AbortError",
    );
    await raw.untilReset(undefined);
    strictEqual(raw.data.length, 0);
    strictEqual(cb.sentFrames.length, 1, "only the RESET frame");
    await stream.closed;
  }
  {
    // A peer that answers the header but never the proposal.
    const { raw, stream } = rawPair();
    const selecting = select(stream, ["/p"], { timeout: 30 });
    raw.send(HEADER);
    await rejects(selecting, (e: unknown) => {
      ok(e instanceof TimeoutError);
      strictEqual(e.code, "ERR_TIMEOUT");
      return true;
    });
    await raw.untilReset(undefined);
    await stream.closed;
  }
  {
    const { raw, stream } = rawPair();
    await rejects(handle(stream, ["/p"], { timeout: 20 }), TimeoutError);
    await raw.untilReset(undefined);
    await stream.closed;
  }
});

Deno.test("multistream: after negotiation 1 MiB goes each way and both half-close", async () => {
  const { a, b } = fakePair();
  const [out, inb] = await Promise.all([
    select(a, ["/bulk/1.0.0"]),
    handle(b, ["/bulk/1.0.0"]),
  ]);
  const up = randomBytes(random(11), 1024 * 1024);
  const down = randomBytes(random(12), 1024 * 1024);
  const [, , gotUp, gotDown] = await Promise.all([
    writeAll(out, up),
    writeAll(inb, down),
    readAll(inb.readable),
    readAll(out.readable),
  ]);
  assertBytes(gotUp, up);
  assertBytes(gotDown, down);
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: selectLazy writes without waiting, and reads after the answer", async () => {
  const { a, b, ca } = fakePair();
  const out = selectLazy(a, "/lazy/1.0.0");
  strictEqual(out.protocol, "/lazy/1.0.0");
  ok(out.readable !== a.readable, "reads are gated on the answer");
  // Nobody answers yet: the data still goes out right behind the proposal.
  const writer = out.writable.getWriter();
  await writer.write(text("early"));
  writer.releaseLock();
  strictEqual(ca.sentFrames.length, 2, "two frames sent with no answer yet");

  const inb = await handle(b, ["/lazy/1.0.0"]);
  await out.confirmed;
  strictEqual(str(await readBytes(inb.readable, 5)), "early");
  await Promise.all([writeAll(out, text("!")), writeAll(inb, text("reply"))]);
  strictEqual(str(await readAll(out.readable)), "reply");
  strictEqual(str(await readAll(inb.readable)), "!");
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: selectLazy's readable works with a BYOB reader", async () => {
  const { a, b } = fakePair();
  const out = selectLazy(a, "/lazy/1.0.0");
  const inb = await handle(b, ["/lazy/1.0.0"]);
  await writeAll(inb, text("abcdef"));
  const reader = out.readable.getReader({ mode: "byob" });
  const first = await reader.read(new Uint8Array(4));
  strictEqual(str(first.value!), "abcd");
  const second = await reader.read(new Uint8Array(4));
  strictEqual(str(second.value!), "ef");
  const end = await reader.read(new Uint8Array(4));
  strictEqual(end.done, true);
  reader.releaseLock();
  await out.close();
  await Promise.all([out.closed, inb.closed]);
});

Deno.test("multistream: selectLazy refused: typed error on read and confirmed, reset both sides see", async () => {
  const { a, b } = fakePair();
  const out = selectLazy(a, "/nope/1.0.0");
  const writer = out.writable.getWriter();
  writer.write(text("data the peer reads as a proposal")).catch(() => {});
  writer.releaseLock();
  const handling = handle(b, ["/yes/1.0.0"]);
  await rejects(out.confirmed, (e: unknown) => {
    ok(e instanceof ProtocolNegotiationError);
    deepStrictEqual(e.protocols, ["/nope/1.0.0"]);
    return true;
  });
  await rejects(out.readable.getReader().read(), ProtocolNegotiationError);
  await rejects(handling, isReset(true, 0x1000));
  await Promise.all([a.closed, b.closed]);
});

Deno.test("multistream: selectLazy's closeRead waits for the answer, then stops sending", async () => {
  const { a, b, ca } = fakePair();
  const out = selectLazy(a, "/lazy/1.0.0");
  const stop = encodeFrame({ flag: Flag.STOP_SENDING }).subarray(1);
  const stopSent = () =>
    ca.sentFrames.some((m: Uint8Array) => m.join() === stop.join());
  out.closeRead();
  await rejects(out.readable.getReader().read());
  await tick();
  ok(!stopSent(), "STOP_SENDING waits for the answer");
  const inb = await handle(b, ["/lazy/1.0.0"]);
  await out.confirmed;
  await tick();
  ok(stopSent(), "STOP_SENDING sent once the answer was read");
  await Promise.all([out.close(), inb.close()]);
  await Promise.all([a.closed, b.closed]);
});

Deno.test("multistream: selectLazy times out when the peer never answers", async () => {
  const { raw, stream } = rawPair();
  const out = selectLazy(stream, "/p", { timeout: 20 });
  await rejects(out.confirmed, TimeoutError);
  await rejects(out.readable.getReader().read(), TimeoutError);
  await raw.untilReset(undefined);
  await stream.closed;
});

Deno.test("multistream: bad arguments throw TypeError before anything is sent", async () => {
  const { a, b, ca } = fakePair();
  await rejects(select(a, []), TypeError);
  await rejects(select(a, ["/with\nnewline"]), TypeError);
  await rejects(select(a, [""]), TypeError);
  await rejects(select(a, ["/" + "x".repeat(1023)]), TypeError);
  await rejects(handle(b, []), TypeError);
  await rejects(select(a, ["/p"], { timeout: NaN }), TypeError);
  await rejects(handle(b, ["/p"], { maxMessageSize: 0 }), TypeError);
  throws(() => selectLazy(a, ""), TypeError);
  const reader = a.readable.getReader();
  await rejects(select(a, ["/p"]), TypeError);
  reader.releaseLock();
  const writer = a.writable.getWriter();
  await rejects(select(a, ["/p"]), TypeError);
  throws(() => selectLazy(a, "/p"), TypeError);
  writer.releaseLock();
  ok(!a.readable.locked, "a failed lock gives the other back");
  strictEqual(ca.sent.length, 0);
  // Still usable.
  const [out, inb] = await Promise.all([select(a, ["/p"]), handle(b, ["/p"])]);
  await Promise.all([out.close(), inb.close()]);
  await Promise.all([a.closed, b.closed]);
});

Deno.test("multistream: await using closes a negotiated stream gracefully", async () => {
  const { a, b } = fakePair();
  {
    const [x, y] = await Promise.all([select(a, ["/p"]), handle(b, ["/p"])]);
    await using out = x;
    await using inb = y;
    strictEqual(out.protocol, inb.protocol);
  }
  await Promise.all([a.closed, b.closed]);
});
