/**
 * Dial/close cycles over libdatachannel, and whether memory grows over them:
 * one WebRTC-Direct dial to a p2prtc listener, one stream negotiated and
 * closed, the connection closed and gone on both ends, over and over (1000
 * measured cycles in the full run, after 50 of warm-up). The baseline is a
 * bare peer connection pair of the same backend, connected by offer and
 * answer and closed, as often. Every iteration checks that no peer
 * connection or data channel is left open.
 *
 * Memory (after a full GC) is read after every iteration. Reported: the
 * growth over all measured cycles of the JavaScript heap and of the native
 * heap (what malloc has handed out, in every arena: libdatachannel's,
 * libjuice's and usrsctp's state), and the resident set size's, over all of
 * them and over the second half only. RSS climbs for a few hundred cycles
 * and then levels off: V8 grows its heap's reserve (`heapTotal` from 17 to
 * 70 MiB while the heap in use stays at 14) and its compiled code, and glibc
 * keeps some of what native threads freed. A leak shows in the heaps.
 *
 * This suite has a process of its own, so no earlier suite's memory blurs
 * it. Run it with `deno task bench`, or alone:
 * `deno bench -P=test --v8-flags=--expose-gc bench/cycles_bench.ts`.
 *
 * @module
 */

import { cleanup as nativeCleanup } from "node-datachannel";
import { libdatachannel } from "../backends/libdatachannel.ts";
import { Closer, connect } from "../tests/conformance/connect.ts";
import {
  benchCase,
  lazy,
  median,
  type Memory,
  memory,
  pick,
  sleep,
  teardownBench,
  type Timer,
} from "./common.ts";
import {
  benchTransport,
  closeEcho,
  ECHO,
  listenLoopback,
  settle,
} from "./fixtures.ts";

/** Cycles per iteration. */
const CYCLES = pick(50, 3);
/** Measured iterations: 20 × 50 = 1000 cycles. */
const ITERATIONS = pick(20, 1);
const group = "dial/close cycles (libdatachannel)";
const none = { peerConnections: 0, dataChannels: 0 };

// No cleanup() each time the last connection closes: restarting
// libdatachannel every raw cycle would be part of the measure.
const ldc = await libdatachannel({ cleanup: false });

/** How many readings, at each end of the second half, a median is taken of. */
const ENDS = 5;

/**
 * Tracks memory over the iterations of one row and records its growth.
 *
 * Native memory in use moves by a megabyte or so from one reading to the
 * next (whatever the stack's threads hold at that moment), as much as a
 * leak of 1 KiB a cycle adds over 1000. So growth over the second half is
 * the median of the last {@linkcode ENDS} readings less the median of the
 * first {@linkcode ENDS} of that half, for RSS and the native heap alike.
 */
class Growth {
  #what: string;
  #first: Memory | undefined;
  /** The readings from the middle of the measured cycles on. */
  #secondHalf: Memory[] = [];
  #cycles = 0;

  constructor(what: string) {
    this.#what = what;
  }

  /** Records the growth after the measured iteration that just ended. */
  record(timer: Timer): void {
    if (timer.warmup) return;
    this.#cycles += CYCLES;
    const now = memory();
    // Growth is counted from the end of the first measured iteration.
    this.#first ??= now;
    const measured = this.#cycles - CYCLES;
    if (measured >= (ITERATIONS * CYCLES) / 2) this.#secondHalf.push(now);
    const what = this.#what;
    timer.metric(`${what} cycles measured for growth`, measured, "");
    timer.metric(
      `JS heap growth over ${what} cycles`,
      now.heap - this.#first.heap,
      "bytes",
    );
    timer.metric(
      `RSS growth over ${what} cycles`,
      now.rss - this.#first.rss,
      "bytes",
    );
    const half = this.#secondHalf;
    if (half.length < 2) return;
    const ends = Math.min(ENDS, half.length >> 1);
    const growth = (of: (m: Memory) => number | undefined) => {
      const values = half.map(of);
      if (values.some((v) => v === undefined)) return undefined;
      const known = values as number[];
      return median(known.slice(-ends)) - median(known.slice(0, ends));
    };
    timer.metric(
      `RSS growth over the second half of ${what} cycles`,
      growth((m) => m.rss)!,
      "bytes",
    );
    const native = growth((m) => m.native);
    if (native !== undefined) {
      timer.metric(
        `native heap growth over the second half of ${what} cycles`,
        native,
        "bytes",
      );
    }
  }
}

const rawGrowth = new Growth("raw");
benchCase({
  group,
  name: "raw peer connection pair",
  baseline: true,
  n: ITERATIONS,
  ops: CYCLES,
  async fn(timer) {
    for (let i = 0; i < CYCLES; i++) {
      const closer = new Closer();
      try {
        await connect(ldc, ldc, closer, {
          signal: AbortSignal.timeout(60_000),
        });
      } finally {
        closer.closeAll();
      }
      await settle(ldc, none);
    }
    rawGrowth.record(timer);
  },
});

const listening = lazy(async () => {
  const dialer = await benchTransport(ldc);
  const listener = await benchTransport(ldc);
  const udp = await listenLoopback(listener);
  return {
    dialer,
    listener,
    addr: udp.addr,
    async close() {
      await dialer[Symbol.asyncDispose]();
      await listener[Symbol.asyncDispose]();
      udp.close();
    },
  };
});

const p2prtcGrowth = new Growth("p2prtc");
benchCase({
  group,
  name: "p2prtc dial, stream, close",
  n: ITERATIONS,
  ops: CYCLES,
  async fn(timer) {
    const { dialer, listener, addr } = await listening();
    for (let i = 0; i < CYCLES; i++) {
      const connection = await dialer.dial(addr);
      try {
        await closeEcho(await connection.newStream(ECHO));
      } finally {
        connection.close();
      }
      await connection.closed;
      // The listener's end goes when its peer connection reports the close.
      for (let j = 0; j < 5000 && listener.connections.size > 0; j++) {
        await sleep(2);
      }
    }
    // The listener's UDP port stays; no connection or channel does.
    await settle(ldc, none);
    p2prtcGrowth.record(timer);
  },
});

teardownBench(async () => {
  await ldc.idle(AbortSignal.timeout(30_000));
  nativeCleanup();
});
