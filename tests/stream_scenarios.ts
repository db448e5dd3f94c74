/**
 * Stream scenarios from `stream-checklist.md` that hold on any wire: they are
 * registered once over the deterministic fake channel (`stream_test.ts`) and
 * again over each real backend (the conformance suite).
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import {
  StreamClosedError,
  StreamErrorCode,
  StreamResetError,
  StreamStoppedError,
} from "../core/errors.ts";
import { encodeFrame, MAX_PAYLOAD_SIZE } from "../core/framing.ts";
import { random, randomBytes } from "./random.ts";
import {
  assertBytes,
  isSettled,
  type MakeStreamPair,
  readAll,
  readWithSignal,
  writeAndClose,
} from "./stream_helpers.ts";

/** One scenario: a name that starts with its checklist number, and a body. */
export interface StreamScenario {
  /** `NN description`, NN being the stream-checklist item. */
  name: string;
  /** Runs the scenario on pairs from `make`. */
  run(make: MakeStreamPair): Promise<void>;
}

const text = (s: string) => new TextEncoder().encode(s);
const isReset = (remote: boolean, errorCode?: number) => (error: unknown) =>
  error instanceof StreamResetError && error.code === "ERR_STREAM_RESET" &&
  error.remote === remote &&
  (errorCode === undefined || error.errorCode === errorCode);

/** The scenarios, in checklist order. */
export const streamScenarios: StreamScenario[] = [
  {
    name:
      "01 write, closeWrite: the peer reads the data then EOF, and EOF is sticky",
    async run(make) {
      const { a, b } = await make();
      await writeAndClose(a, text("hello"));
      const reader = b.readable.getReader({ mode: "byob" });
      const first = await reader.read(new Uint8Array(16));
      strictEqual(new TextDecoder().decode(first.value), "hello");
      for (let i = 0; i < 3; i++) {
        const end = await reader.read(new Uint8Array(16));
        strictEqual(end.done, true);
        strictEqual(end.value?.byteLength, 0, "a read at EOF returns 0 bytes");
      }
      reader.releaseLock();
      await b.close();
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name:
      "02 partial reads of one frame; empty and flag-less frames are skipped",
    async run(make) {
      const { a, b, ca } = await make();
      await a.writable.getWriter().write(text("abcdef"));
      // Raw frames a well-behaved peer never sends, but a buggy one might.
      ca.send(encodeFrame({ message: new Uint8Array(0) }));
      ca.send(encodeFrame({}));
      ca.send(encodeFrame({ flag: 42 }));
      ca.send(encodeFrame({ message: text("g") }));
      const reader = b.readable.getReader({ mode: "byob" });
      const got: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { value } = await reader.read(new Uint8Array(2));
        got.push(new TextDecoder().decode(value));
      }
      strictEqual(got.join("|"), "ab|cd|ef|g");
      reader.releaseLock();
      a.reset();
      b.reset();
    },
  },
  {
    name:
      "03 writes after closeWrite and after the peer's STOP_SENDING fail, typed",
    async run(make) {
      const { a, b } = await make();
      const writer = a.writable.getWriter();
      await a.closeWrite();
      await rejects(writer.write(text("late")), StreamClosedError);
      await b.close();

      const second = await make();
      const writer2 = second.a.writable.getWriter();
      await writer2.write(text("x"));
      second.b.closeRead();
      await rejects(
        (async () => {
          // The STOP_SENDING takes a moment to arrive; keep writing until then
          // (5 s at most).
          for (let i = 0; i < 500; i++) {
            await writer2.write(text("y"));
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        })(),
        StreamStoppedError,
      );
      second.a.reset();

      // Also when our FIN went out before the STOP_SENDING arrived.
      const third = await make();
      const writer3 = third.a.writable.getWriter();
      const closing = third.a.closeWrite();
      third.b.closeRead();
      await closing;
      await rejects(writer3.write(text("z")), StreamClosedError);
      await third.b.closeWrite();
      await Promise.all([third.a.closed, third.b.closed]);
    },
  },
  {
    name: "04 half-close both ways: closeWrite then read; closeRead then write",
    async run(make) {
      const { a, b } = await make();
      await a.closeWrite();
      await writeAndClose(b, text("reply after FIN"));
      strictEqual(
        new TextDecoder().decode(await readAll(a.readable)),
        "reply after FIN",
      );
      strictEqual((await readAll(b.readable)).length, 0);
      await Promise.all([a.closed, b.closed]);

      const second = await make();
      second.a.closeRead();
      await writeAndClose(second.a, text("still writing"));
      strictEqual(
        new TextDecoder().decode(await readAll(second.b.readable)),
        "still writing",
      );
      await second.b.close();
      await Promise.all([second.a.closed, second.b.closed]);
    },
  },
  {
    name:
      "05 local reset fails both halves; the peer read the earlier data, then a reset",
    async run(make) {
      const { a, b } = await make();
      const writer = a.writable.getWriter();
      await writer.write(text("before"));
      const reader = b.readable.getReader();
      strictEqual(
        new TextDecoder().decode((await reader.read()).value),
        "before",
      );
      a.reset();
      await rejects(writer.write(text("after")), isReset(false));
      await rejects(a.readable.getReader().read(), isReset(false));
      await rejects(reader.read(), isReset(true));
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name: "06 a remote reset wakes a blocked read",
    async run(make) {
      const { a, b } = await make();
      const pending = b.readable.getReader().read();
      ok(!(await isSettled(pending)));
      a.reset(StreamErrorCode.SHUTDOWN);
      // The code is item 08's business: on a real wire the channel's close can
      // overtake the RESET frame, which still ends the read as a remote reset.
      await rejects(pending, isReset(true));
    },
  },
  {
    name:
      "07 reset during close closes at once; close and reset are idempotent",
    async run(make) {
      const { a, b, ca } = await make();
      const closing = a.close(); // FIN goes out; FIN_ACK cannot be back yet
      a.reset();
      await a.closed;
      ok(ca.readyState !== "open", "the channel is closed at once");
      await rejects(closing, isReset(false));
      // Again, both ways: nothing more happens and nothing throws.
      a.reset();
      a.closeRead();
      await rejects(a.close(), isReset(false));
      // Once b has seen STOP_SENDING, FIN and RESET, its writes fail, typed.
      await b.closed;
      await rejects(
        b.writable.getWriter().write(text("x")),
        (e: unknown) => e instanceof StreamStoppedError || isReset(true)(e),
      );
    },
  },
  {
    name:
      "08 reset carries an error code; go's RESET with errorCode 0 is understood",
    async run(make) {
      const { a, b } = await make();
      a.reset(StreamErrorCode.PROTOCOL_VIOLATION);
      // Over libdatachannel the channel's close can overtake the RESET frame
      // (docs/known-issues.md): then the reset arrives without its code.
      await rejects(
        b.readable.getReader().read(),
        (e: unknown) =>
          isReset(true, StreamErrorCode.PROTOCOL_VIOLATION)(e) ||
          isReset(true)(e) && (e as StreamResetError).errorCode === undefined,
      );

      const second = await make();
      // Exactly what go-libp2p >= 0.40 sends: 04 08 02 18 00.
      second.ca.send(new Uint8Array([0x04]));
      second.ca.send(new Uint8Array([0x08, 0x02, 0x18, 0x00]));
      await rejects(second.b.readable.getReader().read(), isReset(true, 0));
      second.a.reset();
    },
  },
  {
    name:
      "09 closeWrite resolves on FIN_ACK; both halves done closes the channel",
    async run(make) {
      const { a, b, ca, cb } = await make();
      await a.closeWrite();
      await b.closeWrite();
      await readAll(a.readable);
      await readAll(b.readable);
      await Promise.all([a.closed, b.closed]);
      ok(ca.readyState !== "open" && cb.readyState !== "open");
    },
  },
  {
    name: "10 concurrent close from both sides completes on both",
    async run(make) {
      const { a, b } = await make();
      await Promise.all([
        writeAndClose(a, text("from a")),
        writeAndClose(b, text("from b")),
      ]);
      strictEqual(
        new TextDecoder().decode(await readAll(b.readable)),
        "from a",
      );
      strictEqual(
        new TextDecoder().decode(await readAll(a.readable)),
        "from b",
      );
      await Promise.all([a.close(), b.close()]);
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name: "11 the peer closing the channel without FIN is a reset, not EOF",
    async run(make) {
      const { a, b } = await make();
      const reader = a.readable.getReader();
      await writeAndClose(b, text("ok")).catch(() => {});
      strictEqual(new TextDecoder().decode((await reader.read()).value), "ok");
      strictEqual((await reader.read()).done, true, "FIN then close is clean");
      await a.close();

      const second = await make();
      const pending = second.a.readable.getReader().read();
      second.cb.close(); // the peer's stack closes the channel, no FIN
      await rejects(pending, isReset(true));
      await Promise.all([second.a.closed, second.b.closed]);
    },
  },
  {
    name: "12 data written just before close is all delivered",
    async run(make) {
      const { a, b } = await make();
      const data = randomBytes(random(12), 1024 * 1024 + 7);
      const writer = a.writable.getWriter();
      // Neither call is awaited before the close: ordering alone must hold.
      void writer.write(data.subarray(0, 1000));
      void writer.write(data.subarray(1000));
      const closing = writer.close();
      assertBytes(await readAll(b.readable), data);
      await closing;
      await b.close();
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name: "13 a large transfer arrives intact in both directions",
    async run(make) {
      const { a, b } = await make();
      const next = random(13);
      const ab = randomBytes(next, 3 * 1024 * 1024 + 1);
      const ba = randomBytes(next, 2 * 1024 * 1024 + 3);
      const [, , fromA, fromB] = await Promise.all([
        writeAndClose(a, ab),
        writeAndClose(b, ba),
        readAll(b.readable),
        readAll(a.readable),
      ]);
      assertBytes(fromA, ab);
      assertBytes(fromB, ba);
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name:
      "18 writes are chunked at 16377 bytes: 1, 16377, 16378 and 1 MiB arrive whole",
    async run(make) {
      for (const size of [1, MAX_PAYLOAD_SIZE, MAX_PAYLOAD_SIZE + 1, 1 << 20]) {
        const { a, b } = await make();
        const data = randomBytes(random(size), size);
        const [, got] = await Promise.all([
          writeAndClose(a, data),
          readAll(b.readable),
        ]);
        assertBytes(got, data);
        await b.close();
        await Promise.all([a.closed, b.closed]);
      }
    },
  },
  {
    name:
      "19 writes wait while bufferedAmount is high and resume when it drains",
    async run(make) {
      const maxBufferedAmount = 64 * 1024;
      const { a, b, ca } = await make({
        maxBufferedAmount,
        bufferedAmountLowThreshold: 16 * 1024,
      });
      const data = randomBytes(random(19), 4 * 1024 * 1024);
      let highest = 0;
      const writer = a.writable.getWriter();
      const writing = (async () => {
        for (let i = 0; i < data.length; i += 64 * 1024) {
          await writer.write(data.subarray(i, i + 64 * 1024));
          highest = Math.max(highest, ca.bufferedAmount);
        }
        await writer.close();
      })();
      assertBytes(await readAll(b.readable), data);
      await writing;
      // A write of 64 KiB may start just under the mark and add its frames.
      ok(
        highest <= maxBufferedAmount + 64 * 1024 + 32,
        `bufferedAmount reached ${highest}`,
      );
      await b.close();
      await Promise.all([a.closed, b.closed]);
    },
  },
  {
    name:
      "22 1000 streams, one after another, open, echo and close; ids keep one parity",
    async run(make) {
      const parities = new Set<number>();
      for (let i = 0; i < 1000; i++) {
        const { a, b } = await make();
        const byte = new Uint8Array([i & 0xff]);
        await Promise.all([
          writeAndClose(a, byte),
          b.readable.pipeTo(b.writable),
        ]);
        const echoed = await readAll(a.readable);
        strictEqual(echoed[0], byte[0]);
        await Promise.all([a.closed, b.closed]);
        if (a.id !== null) parities.add(a.id % 2);
      }
      ok(parities.size <= 1, "the opener's stream ids keep one parity");
    },
  },
  {
    name:
      "21 a read given up on a signal loses nothing; the next read gets the data",
    async run(make) {
      const { a, b } = await make();
      await rejects(
        readWithSignal(b.readable, AbortSignal.timeout(20)),
        (error: unknown) => (error as Error).name === "TimeoutError",
      );
      // An already-aborted signal gives up at once, without reading.
      const aborted = AbortSignal.abort(new Error("gave up"));
      await rejects(readWithSignal(b.readable, aborted), /gave up/);
      await writeAndClose(a, text("late"));
      const { value } = await readWithSignal(b.readable);
      strictEqual(new TextDecoder().decode(value), "late");
      await b.close();
      await Promise.all([a.closed, b.closed]);
    },
  },
];
