/**
 * Bulk transfer on one connection: 16 MiB through 1, 8 or 64 concurrent
 * streams (the 16 MiB split evenly), timed from the first byte written to
 * the last byte read by the receiving application. One group per workload
 * and backend, with these rows:
 *
 * - `raw data channel` (the baseline): the same bytes as 16 KiB messages on
 *   bare data channels of the same backend, no framing, the same
 *   `bufferedAmount` bounds as a stream;
 * - `p2prtc stream`: `WebRTCStream`s on fresh channels of that same
 *   connection (frames, state machine, Web Streams);
 * - `p2prtc transport`: streams opened with `newStream` on a
 *   `WebRTCTransport` connection (WebRTC-Direct for libdatachannel, `/webrtc`
 *   for werift), to a handler that reads to the end;
 * - `js-libp2p` (libdatachannel only): the same through two js-libp2p nodes
 *   with `@libp2p/webrtc`'s WebRTC-Direct.
 *
 * Applications write 64 KiB at a time. Run it with `deno task bench`, or
 * alone: `deno bench -P=test bench/bulk_bench.ts`.
 *
 * @module
 */

import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import type { DataChannel } from "../core/backend.ts";
import type { WebRTCStream } from "../core/stream.ts";
import { readAll } from "../tests/stream_helpers.ts";
import { cleanup as nativeCleanup } from "node-datachannel";
import { benchCase, lazy, pick, teardownBench } from "./common.ts";
import {
  ECHO,
  jsDialProtocol,
  jsDrain,
  type JsPair,
  jsPair,
  jsWrite,
  type P2prtcPair,
  p2prtcPair,
  type RawPair,
  rawPair,
  type Settling,
  SINK,
} from "./fixtures.ts";

/** Bytes per iteration, over all streams. */
const TOTAL = pick(16 << 20, 256 << 10);
/** What the applications hand to a write at a time. */
const APP_CHUNK = 64 << 10;
/** The raw baseline's message size: a full frame's worth. */
const RAW_MESSAGE = 16384;
/** The stream's own bounds (`StreamOptions` defaults), used for raw too. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

const payload = new Uint8Array(TOTAL).map((_, i) => i * 7);

/** Sends `data` as raw messages, waiting on `bufferedAmount` as a stream does. */
async function sendRaw(channel: DataChannel, data: Uint8Array): Promise<void> {
  channel.bufferedAmountLowThreshold = LOW_WATER;
  for (let at = 0; at < data.length; at += RAW_MESSAGE) {
    if (channel.bufferedAmount > HIGH_WATER) {
      await new Promise<void>((resolve) => {
        channel.onbufferedamountlow = () => resolve();
      });
    }
    channel.send(data.subarray(at, at + RAW_MESSAGE));
  }
}

/** Resolves once `channel` has received `length` bytes. */
function receiveRaw(channel: DataChannel, length: number): Promise<void> {
  let received = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  channel.onmessage = (data) => {
    received += data.length;
    if (received >= length) resolve();
  };
  return promise;
}

/** Closes a raw channel pair and waits for both to report it. */
async function closeChannels(ca: DataChannel, cb: DataChannel): Promise<void> {
  const closed = [ca, cb].map((channel) =>
    new Promise<void>((resolve) => {
      if (channel.readyState === "closed") return resolve();
      channel.onclose = () => resolve();
    })
  );
  ca.close();
  await Promise.all(closed);
}

/** Writes `data` in application chunks, then FIN (and waits for FIN_ACK). */
async function writeStream(
  stream: { writable: WritableStream<Uint8Array>; closeWrite(): Promise<void> },
  data: Uint8Array,
): Promise<void> {
  const writer = stream.writable.getWriter();
  for (let at = 0; at < data.length; at += APP_CHUNK) {
    await writer.write(data.subarray(at, at + APP_CHUNK));
  }
  writer.releaseLock();
  await stream.closeWrite();
}

function slices(streams: number): Uint8Array[] {
  const each = TOTAL / streams;
  return Array.from(
    { length: streams },
    (_, i) => payload.subarray(i * each, (i + 1) * each),
  );
}

interface Backends {
  name: string;
  raw: () => Promise<RawPair>;
  p2prtc: () => Promise<P2prtcPair>;
  js?: () => Promise<JsPair>;
}

// js-libp2p shares node-datachannel with us in this process: our cleanup()
// would stop its connections too.
const ldc = await libdatachannel({ cleanup: false });
const wrt = werift();

const backends: Backends[] = [
  {
    name: "libdatachannel",
    raw: lazy(() => rawPair(ldc)),
    p2prtc: lazy(() => p2prtcPair(ldc)),
    js: lazy(async () => {
      const pair = await jsPair();
      // Dial once: every stream of the suite rides this connection.
      const first = await jsDialProtocol(pair, ECHO);
      await first.close();
      return pair;
    }),
  },
  {
    name: "werift",
    raw: lazy(() => rawPair(wrt as Settling)),
    p2prtc: lazy(() => p2prtcPair(wrt as Settling)),
  },
];

for (const streams of [1, 8, 64]) {
  for (const backend of backends) {
    const group = `bulk ${TOTAL >> 20 || TOTAL >> 10}${
      TOTAL >> 20 ? "MiB" : "KiB"
    } x${streams} streams (${backend.name})`;
    const n = pick(backend.name === "werift" ? 4 : 8, 1);
    const common = { group, n, bytes: TOTAL };

    benchCase({
      ...common,
      name: "raw data channel",
      baseline: true,
      async fn(timer) {
        const pair = await backend.raw();
        const channels: [DataChannel, DataChannel][] = [];
        for (let i = 0; i < streams; i++) channels.push(await pair.channels());
        const parts = slices(streams);
        timer.start();
        await Promise.all(channels.map(([ca, cb], i) => {
          const received = receiveRaw(cb, parts[i].length);
          return Promise.all([sendRaw(ca, parts[i]), received]);
        }));
        timer.end();
        await Promise.all(channels.map(([ca, cb]) => closeChannels(ca, cb)));
      },
    });

    benchCase({
      ...common,
      name: "p2prtc stream",
      async fn(timer) {
        const pair = await backend.raw();
        const pairs: [WebRTCStream, WebRTCStream][] = [];
        for (let i = 0; i < streams; i++) pairs.push(await pair.streams());
        const parts = slices(streams);
        timer.start();
        await Promise.all(
          pairs.map(([a, b], i) =>
            Promise.all([writeStream(a, parts[i]), readAll(b.readable)])
          ),
        );
        timer.end();
        await Promise.all(pairs.map(async ([a, b]) => {
          await b.closeWrite();
          await Promise.all([a.closed, b.closed]);
        }));
      },
    });

    benchCase({
      ...common,
      name: "p2prtc transport",
      async fn(timer) {
        const { connection } = await backend.p2prtc();
        const opened = [];
        for (let i = 0; i < streams; i++) {
          opened.push(await connection.newStream(SINK));
        }
        const parts = slices(streams);
        timer.start();
        await Promise.all(opened.map(async (stream, i) => {
          await writeStream(stream, parts[i]);
          await readAll(stream.readable);
        }));
        timer.end();
        await Promise.all(opened.map((stream) => stream.closed));
      },
    });

    const js = backend.js;
    if (js === undefined) continue;
    benchCase({
      ...common,
      name: "js-libp2p",
      async fn(timer) {
        const pair = await js();
        const opened = [];
        for (let i = 0; i < streams; i++) {
          opened.push(await pair.dialer.dialProtocol(pair.addr, SINK));
        }
        const parts = slices(streams);
        timer.start();
        await Promise.all(opened.map(async (stream, i) => {
          await jsWrite(stream, parts[i], APP_CHUNK);
          await stream.close();
          await jsDrain(stream);
        }));
        timer.end();
      },
    });
  }
}

teardownBench(async () => {
  await ldc.idle(AbortSignal.timeout(10_000));
  await wrt.idle(AbortSignal.timeout(10_000));
  // js-libp2p's connections are gone with its nodes; this stops the threads.
  nativeCleanup();
});
