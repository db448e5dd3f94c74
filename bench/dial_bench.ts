/**
 * Setup latency:
 *
 * - `dial to first usable stream` (libdatachannel only: werift cannot
 *   listen on WebRTC-Direct): from `dial(multiaddr)` to a stream negotiated
 *   for an echo protocol that has echoed one byte back; p2prtc dials a p2prtc
 *   listener, js-libp2p (the baseline) a js-libp2p listener. Each
 *   connection is closed before the next dial, outside the measure. A
 *   second p2prtc row runs the listener with `noiseStartDelay: 0`: by
 *   default it waits 30 ms before its first Noise message, for js-libp2p
 *   dialers' sake, which a p2prtc dialer does not need.
 * - `new stream on an open connection`: a data channel plus
 *   multistream-select on an established connection, until the stream is
 *   negotiated. The baseline is a bare data channel opening on a connection
 *   of the same backend; js-libp2p runs it for libdatachannel.
 *
 * Run it with `deno task bench`, or alone:
 * `deno bench -P=test bench/dial_bench.ts`.
 *
 * @module
 */

import { cleanup as nativeCleanup } from "node-datachannel";
import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import type { NegotiatedStream } from "../core/multistream.ts";
import { benchCase, lazy, metric, pick, teardownBench } from "./common.ts";
import {
  benchTransport,
  ECHO,
  jsDialProtocol,
  jsPair,
  type JsStream,
  listenLoopback,
  p2prtcPair,
  rawPair,
  type Settling,
} from "./fixtures.ts";

const ONE = new Uint8Array([42]);

/** Echoes one byte over a p2prtc stream; keeps the stream open. */
async function echoOne(stream: NegotiatedStream): Promise<void> {
  const writer = stream.writable.getWriter();
  await writer.write(ONE);
  writer.releaseLock();
  const reader = stream.readable.getReader();
  const { done } = await reader.read();
  reader.releaseLock();
  if (done) throw new Error("the echo ended early");
}

/** Echoes one byte over a js-libp2p stream. */
async function jsEchoOne(stream: JsStream): Promise<void> {
  const chunks = stream[Symbol.asyncIterator]();
  const next = chunks.next();
  stream.send(ONE);
  const { done } = await next;
  if (done) throw new Error("the echo ended early");
}

// js-libp2p shares node-datachannel with us: no cleanup() until the end.
const ldc = await libdatachannel({ cleanup: false });
const wrt = werift();

const DIALS = pick(20, 2);
const dialGroup = "dial to first usable stream (libdatachannel)";
const js = lazy(() => jsPair());
let jsFailures = 0;

benchCase({
  group: dialGroup,
  name: "js-libp2p",
  baseline: true,
  n: DIALS,
  async fn(timer) {
    const pair = await js();
    timer.start();
    const stream = await jsDialProtocol(pair, ECHO, () => jsFailures++);
    await jsEchoOne(stream);
    timer.end();
    await pair.dialer.hangUp(pair.addr);
  },
});

/**
 * A p2prtc dialer and listener. `noiseStartDelay` is the listener's wait
 * between channel 0 opening and its first Noise message (default 30 ms),
 * which js-libp2p dialers need and p2prtc dialers do not.
 */
function p2prtcDial(noiseStartDelay?: number) {
  return lazy(async () => {
    const dialer = await benchTransport(ldc);
    const listener = await benchTransport(ldc);
    const listening = await listenLoopback(
      listener,
      noiseStartDelay === undefined ? {} : { noiseStartDelay },
    );
    return {
      dialer,
      listener,
      addr: listening.addr,
      async close() {
        await dialer[Symbol.asyncDispose]();
        await listener[Symbol.asyncDispose]();
        listening.close();
      },
    };
  });
}

for (
  const [name, setup] of [
    ["p2prtc", p2prtcDial()],
    ["p2prtc (listener noiseStartDelay 0)", p2prtcDial(0)],
  ] as const
) {
  benchCase({
    group: dialGroup,
    name,
    n: DIALS,
    async fn(timer) {
      const { dialer, listener, addr } = await setup();
      timer.start();
      const connection = await dialer.dial(addr);
      const stream = await connection.newStream(ECHO);
      await echoOne(stream);
      timer.end();
      connection.close();
      await connection.closed;
      // The listener's end goes when its peer connection does (bounded).
      for (let i = 0; i < 2000 && listener.connections.size > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  });
}

const STREAMS = pick(50, 3);
for (const backend of [ldc, wrt as Settling]) {
  const group = `new stream on an open connection (${backend.name})`;
  const n = pick(backend.name === "werift" ? 10 : 20, 1);
  const common = { group, n, ops: STREAMS };
  const raw = lazy(() => rawPair(backend));
  const p2prtc = lazy(() => p2prtcPair(backend));

  benchCase({
    ...common,
    name: "raw data channel",
    baseline: true,
    async fn(timer) {
      const pair = await raw();
      const opened = [];
      timer.start();
      for (let i = 0; i < STREAMS; i++) opened.push(await pair.channels());
      timer.end();
      for (const [ca] of opened) ca.close();
    },
  });

  benchCase({
    ...common,
    name: "p2prtc transport",
    async fn(timer) {
      const { connection } = await p2prtc();
      const opened = [];
      timer.start();
      for (let i = 0; i < STREAMS; i++) {
        opened.push(await connection.newStream(ECHO));
      }
      timer.end();
      await Promise.all(opened.map(async (stream) => {
        await stream.closeWrite();
        for await (const _ of stream.readable) {
          // The echo's end.
        }
      }));
    },
  });

  if (backend !== ldc) continue;
  const jsOpen = lazy(async () => {
    const pair = await jsPair();
    const first = await jsDialProtocol(pair, ECHO, () => jsFailures++);
    await first.close();
    return pair;
  });
  benchCase({
    ...common,
    name: "js-libp2p",
    async fn(timer) {
      const pair = await jsOpen();
      const opened = [];
      timer.start();
      for (let i = 0; i < STREAMS; i++) {
        opened.push(await jsDialProtocol(pair, ECHO, () => jsFailures++));
      }
      timer.end();
      await Promise.all(opened.map((stream) => stream.close()));
    },
  });
}

teardownBench(async () => {
  metric(
    dialGroup,
    "js-libp2p dials or stream opens retried after a timeout",
    jsFailures,
    "",
  );
  await ldc.idle(AbortSignal.timeout(10_000));
  await wrt.idle(AbortSignal.timeout(10_000));
  nativeCleanup();
});
