/**
 * Request/response latency on an open stream: 1 KiB written, the same 1 KiB
 * echoed back and read in full, one round trip after another (the time is
 * per round trip). One group per backend:
 *
 * - `raw data channel` (the baseline): one 1 KiB message each way on a bare
 *   channel, echoed from its `onmessage`;
 * - `p2prtc stream`: `WebRTCStream`s on a channel of that same connection,
 *   the far one piped back into itself;
 * - `p2prtc transport`: a stream opened with `newStream` to an echo handler;
 * - `js-libp2p` (libdatachannel only): the same between two js-libp2p nodes.
 *
 * Run it with `deno task bench`, or alone:
 * `deno bench -P=test bench/latency_bench.ts`.
 *
 * @module
 */

import { cleanup as nativeCleanup } from "node-datachannel";
import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import { benchCase, lazy, pick, teardownBench } from "./common.ts";
import {
  ECHO,
  jsDialProtocol,
  jsPair,
  type JsStream,
  p2prtcPair,
  rawPair,
  type Settling,
} from "./fixtures.ts";

/** The request and the response size. */
const SIZE = 1024;
/** Round trips per iteration. */
const ROUND_TRIPS = pick(200, 5);

const request = new Uint8Array(SIZE).fill(0x5a);

/** Round trips over a stream's halves: write, then read `SIZE` bytes back. */
async function pingPong(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
  for (let i = 0; i < ROUND_TRIPS; i++) {
    await writer.write(request);
    let received = 0;
    while (received < SIZE) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the echo ended early");
      received += value.length;
    }
  }
}

// js-libp2p shares node-datachannel with us: no cleanup() until the end.
const ldc = await libdatachannel({ cleanup: false });
const wrt = werift();

for (const backend of [ldc, wrt as Settling]) {
  const group = `ping-pong 1KiB (${backend.name})`;
  const n = pick(backend.name === "werift" ? 5 : 10, 1);
  const common = { group, n, ops: ROUND_TRIPS };
  const raw = lazy(() => rawPair(backend));
  const p2prtc = lazy(() => p2prtcPair(backend));

  benchCase({
    ...common,
    name: "raw data channel",
    baseline: true,
    async fn(timer) {
      const [ca, cb] = await (await raw()).channels();
      cb.onmessage = (data) => cb.send(data);
      let wake = Promise.withResolvers<void>();
      let received = 0;
      ca.onmessage = (data) => {
        received += data.length;
        if (received >= SIZE) wake.resolve();
      };
      timer.start();
      for (let i = 0; i < ROUND_TRIPS; i++) {
        received = 0;
        ca.send(request);
        await wake.promise;
        wake = Promise.withResolvers();
      }
      timer.end();
      ca.close();
    },
  });

  benchCase({
    ...common,
    name: "p2prtc stream",
    async fn(timer) {
      const [a, b] = await (await raw()).streams();
      const echoing = b.readable.pipeTo(b.writable);
      const writer = a.writable.getWriter();
      const reader = a.readable.getReader();
      timer.start();
      await pingPong(writer, reader);
      timer.end();
      reader.releaseLock();
      await writer.close();
      await echoing;
      await Promise.all([a.closed, b.closed]);
    },
  });

  benchCase({
    ...common,
    name: "p2prtc transport",
    async fn(timer) {
      const { connection } = await p2prtc();
      const stream = await connection.newStream(ECHO);
      const writer = stream.writable.getWriter();
      const reader = stream.readable.getReader();
      timer.start();
      await pingPong(writer, reader);
      timer.end();
      reader.releaseLock();
      await writer.close();
      for await (const _ of stream.readable) {
        // The echo's end.
      }
      await stream.closed;
    },
  });

  if (backend !== ldc) continue;
  const js = lazy(() => jsPair());
  benchCase({
    ...common,
    name: "js-libp2p",
    async fn(timer) {
      const stream: JsStream = await jsDialProtocol(await js(), ECHO);
      const chunks = stream[Symbol.asyncIterator]();
      timer.start();
      for (let i = 0; i < ROUND_TRIPS; i++) {
        // Reading starts before the send: a js-libp2p stream drops what
        // arrives while nobody iterates it.
        let next = chunks.next();
        stream.send(request);
        let received = 0;
        while (true) {
          const { value, done } = await next;
          if (done) throw new Error("the echo ended early");
          received += value.subarray().length;
          if (received >= SIZE) break;
          next = chunks.next();
        }
      }
      timer.end();
      await stream.close();
    },
  });
}

teardownBench(async () => {
  await ldc.idle(AbortSignal.timeout(10_000));
  await wrt.idle(AbortSignal.timeout(10_000));
  nativeCleanup();
});
