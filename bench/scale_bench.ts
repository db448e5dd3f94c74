/**
 * Scale: many connections and many streams, and what they cost in time and
 * memory (dial/close cycles are in `cycles_bench.ts`). Every iteration closes what it opened and checks that the
 * backend's handle count is back where it was (a leak fails the bench).
 *
 * - `256 connections to one listener` (libdatachannel): 256 concurrent
 *   WebRTC-Direct dials from one p2prtc transport to one p2prtc listener,
 *   timed until all are authenticated; the baseline is 256 bare peer
 *   connection pairs of the same backend connected by offer and answer.
 * - `1000 streams on one connection`: 1000 streams opened (200 at a time,
 *   within the default bound of 256 negotiating) and all left open; the
 *   baseline is 1000 bare data channels on a connection of the same backend.
 *
 * Memory is the resident set size and, apart, the JavaScript heap in use,
 * after a full GC (the runner passes `--v8-flags=--expose-gc`), before and
 * after setup, divided by the count. Both ends of every connection live in
 * this process, so a connection's figure covers its two ends. RSS deltas
 * are rough: memory freed by an earlier iteration is reused without showing.
 *
 * Run it with `deno task bench`, or alone:
 * `deno bench -P=test --v8-flags=--expose-gc bench/scale_bench.ts`.
 *
 * @module
 */

import { cleanup as nativeCleanup } from "node-datachannel";
import { libdatachannel } from "../backends/libdatachannel.ts";
import { werift } from "../backends/werift.ts";
import type { DataChannel } from "../core/backend.ts";
import { Closer, connect } from "../tests/conformance/connect.ts";
import {
  benchCase,
  type Memory,
  memory,
  metric,
  pick,
  sleep,
  teardownBench,
  type Timer,
} from "./common.ts";
import {
  benchTransport,
  closeEcho,
  ECHO,
  inWaves,
  listenLoopback,
  p2prtcPair,
  rawPair,
  settle,
  type Settling,
} from "./fixtures.ts";

const CONNECTIONS = pick(256, 8);
const STREAMS = pick(1000, 20);
const WAVE = 200;
// No cleanup() each time the last connection closes (between iterations):
// restarting libdatachannel would be part of the measure. Once, at the end.
const ldc = await libdatachannel({ cleanup: false });
const wrt = werift();

/**
 * Records the memory of `count` things set up since `before`. The first
 * setup of the process (the warm-up call) is recorded apart: later ones
 * reuse memory the earlier ones freed, which RSS does not show, so the
 * first is the honest RSS figure and the later ones the steady state.
 */
function recordMemory(
  timer: Timer,
  group: string,
  what: string,
  before: Memory,
  count: number,
): void {
  const now = memory();
  const rssPer = (now.rss - before.rss) / count;
  const heapPer = (now.heap - before.heap) / count;
  if (timer.warmup) {
    metric(group, `RSS per ${what}, first setup`, rssPer, "bytes");
    metric(group, `JS heap per ${what}, first setup`, heapPer, "bytes");
  } else {
    timer.metric(`RSS per ${what}`, rssPer, "bytes");
    timer.metric(`JS heap per ${what}`, heapPer, "bytes");
  }
}

const none = { peerConnections: 0, dataChannels: 0 };

// 256 connections to one listener.
{
  const group = `${CONNECTIONS} connections to one listener (libdatachannel)`;
  const n = pick(3, 1);

  // First in the process, so that its first setup reuses no memory freed
  // by another row's.
  benchCase({
    group,
    name: "p2prtc connections",
    n,
    async fn(timer) {
      await settle(ldc, none);
      const dialer = await benchTransport(ldc);
      const listener = await benchTransport(ldc);
      const listening = await listenLoopback(listener);
      // The first setup in the process pays for what is made once (threads,
      // compiled code, the certificate): a few dials first keep that out.
      if (timer.warmup) {
        for (let i = 0; i < 4; i++) {
          const connection = await dialer.dial(listening.addr);
          connection.close();
          await connection.closed;
        }
        await settle(ldc, none);
      }
      const before = memory();
      try {
        timer.start();
        await inWaves(
          CONNECTIONS,
          CONNECTIONS,
          () => dialer.dial(listening.addr, { timeout: 120_000 }),
        );
        timer.end();
        // The listener adopts its end with the dialer's last Noise message,
        // a moment after the dial resolved (bounded: 10 s).
        for (let i = 0; i < 2000; i++) {
          if (listener.connections.size >= CONNECTIONS) break;
          await sleep(5);
        }
        recordMemory(
          timer,
          group,
          "p2prtc connection (both ends)",
          before,
          CONNECTIONS,
        );
      } finally {
        await dialer[Symbol.asyncDispose]();
        await listener[Symbol.asyncDispose]();
        listening.close();
      }
      await settle(ldc, none);
      timer.metric(
        "RSS kept after closing p2prtc",
        memory().rss - before.rss,
        "bytes",
      );
    },
  });
  benchCase({
    group,
    name: "raw peer connections",
    baseline: true,
    n,
    async fn(timer) {
      await settle(ldc, none);
      const before = memory();
      const closer = new Closer();
      try {
        timer.start();
        await inWaves(
          CONNECTIONS,
          CONNECTIONS,
          () =>
            connect(ldc, ldc, closer, { signal: AbortSignal.timeout(120_000) }),
        );
        timer.end();
        recordMemory(
          timer,
          group,
          "raw peer connection pair",
          before,
          CONNECTIONS,
        );
      } finally {
        closer.closeAll();
      }
      await settle(ldc, none);
      timer.metric(
        "RSS kept after closing raw pairs",
        memory().rss - before.rss,
        "bytes",
      );
    },
  });
}

// 1000 streams on one connection, half opened by each side: libdatachannel
// negotiates 1024 SCTP streams, and each side opens channels with ids of one
// parity only, so one side alone can hold about 512 at once.
for (const backend of [ldc, wrt as Settling]) {
  const group = `${STREAMS} streams on one connection (${backend.name})`;
  const n = pick(3, 1);
  const half = STREAMS / 2;

  benchCase({
    group,
    name: "raw data channels",
    baseline: true,
    n,
    async fn(timer) {
      await settle(backend, none);
      const pair = await rawPair(backend);
      try {
        const start = backend.openHandles();
        const before = memory();
        timer.start();
        const channels = (await Promise.all([
          inWaves(half, WAVE / 2, () => pair.channels("a")),
          inWaves(half, WAVE / 2, () => pair.channels("b")),
        ])).flat();
        timer.end();
        recordMemory(
          timer,
          group,
          "raw data channel (both ends)",
          before,
          STREAMS,
        );
        const closed = channels.map(([mine, theirs]) =>
          whenBothClosed(mine, theirs)
        );
        for (const [mine] of channels) mine.close();
        await Promise.all(closed);
        await settle(backend, start);
      } finally {
        pair.close();
      }
    },
  });

  benchCase({
    group,
    name: "p2prtc streams",
    n,
    async fn(timer) {
      await settle(backend, none);
      const pair = await p2prtcPair(backend);
      try {
        const start = backend.openHandles();
        const before = memory();
        timer.start();
        const streams = (await Promise.all([
          inWaves(half, WAVE / 2, () => pair.connection.newStream(ECHO)),
          inWaves(half, WAVE / 2, () => pair.peer.newStream(ECHO)),
        ])).flat();
        timer.end();
        recordMemory(
          timer,
          group,
          "p2prtc stream (both ends)",
          before,
          STREAMS,
        );
        await Promise.all(streams.map(closeEcho));
        await settle(backend, start);
      } finally {
        await pair.close();
      }
    },
  });
}

function whenBothClosed(ca: DataChannel, cb: DataChannel): Promise<unknown> {
  return Promise.all([ca, cb].map((channel) =>
    new Promise<void>((resolve) => {
      if (channel.readyState === "closed") return resolve();
      const previous = channel.onclose;
      channel.onclose = () => {
        previous?.();
        resolve();
      };
    })
  ));
}

teardownBench(async () => {
  await ldc.idle(AbortSignal.timeout(30_000));
  await wrt.idle(AbortSignal.timeout(30_000));
  nativeCleanup();
});
